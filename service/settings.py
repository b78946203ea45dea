"""Configuration from ``REALCHECK_*`` environment variables (documented in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: images declaring more pixels are refused before decoding (also OpenCV's own limit)
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
#: written in <data_dir>/keys by the running service: its issuer, for `python -m service token`
ISSUER_FILE = "issuer.txt"


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = REPO_ROOT / "var"
    #: empty: SQLite in ``data_dir`` (the embedded default); ``sqlite:///<path>`` another file;
    #: ``postgresql://user:password@host:port/dbname``: PostgreSQL (several replicas may share it)
    database_url: str = ""
    database_pool_min: int = 1  # PostgreSQL connections each process keeps open
    database_pool_max: int = 10
    models_dir: Path = REPO_ROOT / "models"
    #: public origin of this service, used as the local issuer and as an allowed ``azp``.
    public_url: str = ""
    #: "auto" (GPU if ONNX Runtime offers one), "cpu" or "gpu".
    device: str = "auto"
    max_body_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    batch_max_size: int = 16
    batch_max_wait_ms: float = 5.0
    #: intra-op threads per detector session (0 = ONNX Runtime chooses: one per core). One:
    #: a check's rows are few (the view cascade), and a second thread then costs more CPU
    #: in hand-overs than it saves (docs/performance.md); scale with replicas instead.
    inference_threads: int = 1
    #: OpenCV's own threads within one call (decoding, resizing; process-wide; 0 = OpenCV's
    #: default, one per core). One: images are already prepared side by side, and splitting one
    #: image's work across cores cost about 7 % more prepare CPU (`python -m
    #: bench.opencv_threads`, docs/performance.md).
    opencv_threads: int = 1
    #: the event loop `python -m service` runs on: "auto" (uvloop where it is installed, as the
    #: default install does on Linux and macOS; asyncio's own elsewhere), "uvloop" or "asyncio"
    event_loop: str = "auto"
    # Fetching images by URL.
    fetch_timeout_s: float = 10.0
    fetch_max_redirects: int = 3
    #: test hook only: allow fetching from loopback/private addresses.
    fetch_allow_private: bool = False
    # Auth: with jwks_url empty the service is its own issuer.
    jwks_url: str = ""
    issuer: str = ""
    allowed_origins: tuple[str, ...] = ()
    clock_skew_s: int = 30
    token_ttl_s: int = 7 * 24 * 3600
    jwks_cache_s: int = 600
    # Rate limit: checks per user per minute (0 = unlimited).
    rate_limit_per_minute: int = 120
    # Email.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_tls: str = "none"  # none | starttls | tls
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "realcheck@localhost"
    mail_digest_s: int = 0  # 0 = tell moderators immediately; else digest every N seconds
    mail_poll_s: float = 2.0
    mail_max_attempts: int = 8
    mail_backoff_s: float = 30.0  # first retry delay; doubles per attempt
    mail_backoff_max_s: float = 3600.0
    smtp_timeout_s: float = 30.0
    smtp_ca_file: str = ""  # extra CA bundle to trust for TLS (a private mail server)
    # Sign-in with email and password (local issuer only).
    #: consecutive failures from one client address on one email before that pair is locked
    login_max_failures: int = 5
    login_lockout_s: int = 900
    #: sign-in and register attempts per client address per minute (0 = unlimited)
    auth_attempts_per_minute: int = 20
    #: password hashing: threads (128 MiB each while hashing) and how many more may wait
    password_workers: int = 2
    password_queue: int = 16
    # Evidence beside the detectors (provenance, near-duplicates).
    #: PEM file of the C2PA trust anchors (root certificates); empty: no signer is trusted
    c2pa_trust_anchors: str = ""
    #: a moderator's decision applies to images within this many bits (of 256) of PDQ hash
    pdq_max_distance: int = 31
    pdq_window_max_distance: int = 18  # for an item's 95 % windows (5 % crops)
    pdq_min_quality: int = 50  # hashes of lower quality (flat, tiny images) never match
    #: ... and only if their faces agree this well (service.pdq.faces: 0 same pixels, ~0.5
    #: another face), for copies framed alike and for reframed ones (crops, screenshots)
    pdq_max_face_difference_same_framing: float = 0.03
    pdq_max_face_difference: float = 0.1
    evidence_threads: int = 2
    # Video checks (issue 13): what is accepted, what is sampled, how tracks are judged.
    video_max_bytes: int = 64 * 1024 * 1024  # larger uploads or fetches: 413 video_too_large
    video_max_duration_s: float = 600.0  # longer videos are refused (video_too_long)
    video_max_pixels: int = 3840 * 2160  # per frame (video_resolution)
    video_max_side: int = 4096
    video_sample_rate: float = 2.0  # sampled frames per second
    video_sample_seconds: float = 60.0  # only the first seconds are sampled
    video_max_frames: int = 120  # frames scored per video (the rate is lowered to fit)
    video_min_track_frames: int = 3  # a shorter face track is uncertain
    video_trim: float = 0.1  # fraction of frame logits dropped at each end of a track
    video_max_disagreement: float = 0.34  # more frames on the other side: inconsistent
    video_workers: int = 1  # decoding and face-finding threads (a pool of their own)
    video_max_jobs: int = 1  # jobs running at once (per process)
    video_max_queued: int = 8  # jobs waiting beyond those; more: 503 busy
    video_job_timeout_s: float = 300.0
    video_probe_timeout_s: float = 2.0  # reading the header and first picture before 202

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.models_dir = Path(self.models_dir)
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        if not self.issuer and not self.jwks_url:
            self.issuer = self.public_url
        if self.database_url and not self.database_url.startswith(
                ("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("REALCHECK_DATABASE_URL must start with sqlite:///, postgresql://"
                             " or postgres://")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise ValueError("REALCHECK_EVENT_LOOP must be auto, uvloop or asyncio")
        if self.jwks_url and not self.issuer:
            raise ValueError("REALCHECK_JWKS_URL needs REALCHECK_ISSUER (the tokens' iss)")

    @property
    def db_path(self) -> Path:
        """The SQLite file (when ``database_url`` does not name PostgreSQL)."""
        if self.database_url.startswith("sqlite://"):
            return Path(self.database_url[len("sqlite://"):])
        return self.data_dir / "realcheck.sqlite3"

    @property
    def origins(self) -> tuple[str, ...]:
        """Every origin allowed in a token's ``azp``: the configured ones and this service's."""
        return tuple(dict.fromkeys((*self.allowed_origins, self.public_url.rstrip("/"))))

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> "Settings":
        values: dict = {}
        for f in fields(cls):
            raw = environ.get("REALCHECK_" + f.name.upper())
            if raw is None:
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, tuple):
                values[f.name] = _split(raw)
            elif isinstance(default, Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        values.update(overrides)
        return cls(**values)

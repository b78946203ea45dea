"""Video checks end to end: accept (probe, hash-first lookup), run as a job, store, answer.

Plain Python over the checks service, the detector and the job service (testable without HTTP).
Bad input is refused before the job exists (`VideoError`, mapped to JSON by the handler); what
only shows while decoding ends the job as ``failed`` with the same codes. Nothing is stored for
a video that fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass

from service.checks.store import CheckService
from service.detection import preprocess as pp
from service.detection.detector import Detector
from service.pools import BoundedPool
from service.provenance.credentials import CredentialReader
from service.provenance.inspect import summary
from service.settings import Settings
from service.video import sampling
from service.video import store as videos
from service.video.analyze import Rules, assemble, score_frames
from service.video.decode import MIME, Limits, VideoError, probe, still_frames, video_frames
from service.video.jobs import JobFailed, JobService, Progress

log = logging.getLogger("service.video")

#: frame rates a captured sequence may declare
MIN_FPS, MAX_SEQUENCE_FPS = 0.05, 60.0
STILL_FORMATS = ("jpeg", "png")


@dataclass
class Started:
    """What ``POST /v1/checks`` answers for a video: a job (202) or a stored check (201)."""

    job: dict | None = None
    check: dict | None = None


def parse_fps(text: str | None) -> float:
    """A frame sequence's ``fps`` field (required, within MIN_FPS..MAX_SEQUENCE_FPS)."""
    try:
        fps = float(text) if text is not None else math.nan
    except ValueError:
        fps = math.nan
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_SEQUENCE_FPS):
        raise VideoError("bad_field", f"fps (the rate the frames were captured at) is required:"
                         f" a number from {MIN_FPS:g} to {MAX_SEQUENCE_FPS:g}")
    return fps


def frames_sha256(frames: list[bytes], fps: float) -> str:
    """A frame sequence's key in the store: the SHA-256 of its rate and frames, in order."""
    h = hashlib.sha256(f"realcheck frame sequence {fps!r} {len(frames)}\n".encode())
    for data in frames:
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def video_provenance(reader: CredentialReader | None, data: bytes, fmt: str) -> dict | None:
    """Content Credentials of the video file, where c2pa reads the format (MP4, MOV)."""
    if reader is None:
        return None
    try:
        c2pa = reader.read(data, MIME[fmt])
    except Exception as e:  # a manifest the library chokes on must not fail the check
        log.warning("video provenance not read: %s", e)
        return {"c2pa": None, "hints": None, "ai_generated": False, "summary": None,
                "error": "the provenance could not be read"}
    return {"c2pa": c2pa, "hints": None,
            "ai_generated": bool(c2pa and c2pa["state"] == "valid" and c2pa["ai_generated"]),
            "summary": summary(c2pa, None)}


class VideoChecks:
    def __init__(self, settings: Settings, checks: CheckService, detector: Detector,
                 jobs: JobService, reader: CredentialReader | None = None):
        s = settings
        self.settings = s
        self.checks = checks
        self.detector = detector
        self.jobs = jobs
        self.reader = reader
        self.pool = BoundedPool("video", max(1, s.video_workers), 16)
        self.limits = Limits(s.video_max_duration_s, s.video_max_pixels, s.video_max_side)
        self.rules = Rules(s.video_trim, s.video_min_track_frames, s.video_max_disagreement)

    def close(self) -> None:
        self.pool.shutdown()

    async def probe(self, data: bytes, fmt: str):
        try:
            async with asyncio.timeout(self.settings.video_probe_timeout_s):
                return await self.pool.run(probe, data, fmt, self.limits)
        except TimeoutError as e:
            raise VideoError("bad_video", "the video's header could not be read in time") from e

    async def _known(self, sha256: str, user_id, started, page_url, source_url) -> dict | None:
        known = await self.checks.scored(sha256)
        if known is None or known.get("media") != "video":
            return None
        return await self.checks.record(sha256, known, True, user_id, started,
                                        page_url=page_url, source_url=source_url)

    async def start_video(self, data: bytes, fmt: str, user_id: str | None, *,
                          page_url: str | None = None, source_url: str | None = None) -> Started:
        started = time.perf_counter()
        if len(data) > self.settings.video_max_bytes:
            raise VideoError("video_too_large", f"the video is larger than"
                             f" {self.settings.video_max_bytes} bytes", 413)
        # Hashing tens of megabytes takes a while: not on the event loop.
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        check = await self._known(sha256, user_id, started, page_url, source_url)
        if check is not None:
            return Started(check=check)
        info = await self.probe(data, fmt)
        s = self.settings
        plan = sampling.plan(info.duration_s, s.video_sample_rate, s.video_max_frames,
                             s.video_sample_seconds)
        meta = {"source": "file", "capture": None, "format": fmt, "codec": info.codec,
                "duration_s": round(info.duration_s, 3) if info.duration_s is not None else None,
                "fps_sampled": round(plan.rate, 4), "width": info.width, "height": info.height}
        total = plan.count if info.duration_s is not None else None

        async def work(progress: Progress) -> dict:
            loop = asyncio.get_running_loop()
            provenance = None
            if self.reader is not None and self.checks.evidence is not None:
                provenance = loop.run_in_executor(self.checks.evidence.pool, video_provenance,
                                                  self.reader, data, fmt)
            frames = video_frames(data, fmt, plan, self.limits)
            return await self._finish(sha256, frames, meta, total, progress, user_id,
                                      page_url, source_url, provenance)

        return Started(job=await self.jobs.submit(user_id, "video", sha256, work, total))

    def check_frames(self, frames: list[bytes], fps_text: str | None) -> float:
        """The sequence's rate, after refusing what breaks a limit (before any job)."""
        s = self.settings
        fps = parse_fps(fps_text)
        if not frames:
            raise VideoError("empty_body", "no frame was sent")
        if len(frames) > s.video_max_frames:
            raise VideoError("too_many_frames", f"{len(frames)} frames: at most"
                             f" {s.video_max_frames}")
        if len(frames) / fps > s.video_max_duration_s:
            raise VideoError("video_too_long", "the frames span more than the duration limit")
        for i, data in enumerate(frames):
            fmt = pp.sniff_format(data)
            if fmt not in STILL_FORMATS:
                raise VideoError("bad_frame", f"frame {i} is not a JPEG or PNG image")
            size = pp.declared_size(data, fmt)
            if size is None or size[0] <= 0 or size[1] <= 0:
                raise VideoError("bad_frame", f"frame {i}: its header does not say its size")
            w, h = size
            if w * h > s.video_max_pixels or max(w, h) > s.video_max_side:
                raise VideoError("video_resolution", f"frame {i} is {w}x{h}: more than the limit"
                                 f" of {s.video_max_pixels} pixels or {s.video_max_side} on a side")
        return fps

    async def start_frames(self, frames: list[bytes], fps_text: str | None, user_id: str | None,
                           *, capture: str | None = None, page_url: str | None = None,
                           source_url: str | None = None) -> Started:
        started = time.perf_counter()
        fps = self.check_frames(frames, fps_text)
        sha256 = await asyncio.to_thread(frames_sha256, frames, fps)
        check = await self._known(sha256, user_id, started, page_url, source_url)
        if check is not None:
            return Started(check=check)
        meta = {"source": "frames", "capture": capture, "format": None, "codec": None,
                "duration_s": round(len(frames) / fps, 3), "fps_sampled": fps,
                "width": None, "height": None}

        async def work(progress: Progress) -> dict:
            it = still_frames(frames, fps, self.settings.video_max_pixels)
            return await self._finish(sha256, it, meta, len(frames), progress, user_id,
                                      page_url, source_url, None)

        return Started(job=await self.jobs.submit(user_id, "frames", sha256, work, len(frames)))

    async def _finish(self, sha256, frames, meta, total, progress: Progress, user_id, page_url,
                      source_url, provenance) -> dict:
        started = time.perf_counter()
        check = await self._known(sha256, user_id, started, page_url, source_url)
        if check is not None:  # another job stored it meanwhile
            return check
        await progress(0, total, force=True)

        async def step(done: int) -> None:
            await progress(done)

        try:
            scored = await score_frames(frames, self.detector, self.pool.executor, step)
        except VideoError as e:
            raise JobFailed(e.code, e.message) from e
        if not scored:
            raise JobFailed("bad_video", "no frame of the video could be decoded")
        await progress(len(scored), len(scored), force=True)
        analysis = assemble(scored, self.detector, self.rules, meta)
        result = analysis.result
        result["provenance"] = await provenance if provenance is not None else None
        top = result["decisive_face"]
        lead = analysis.decisive[top] if top is not None else scored[0]
        result["pdq"] = lead.pdq.public() if lead.pdq is not None else None
        await videos.store(self.checks.db, sha256, analysis, self.settings.pdq_min_quality)
        return await self.checks.record(sha256, result, False, user_id, started,
                                        page_url=page_url, source_url=source_url)

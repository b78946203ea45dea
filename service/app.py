"""The application factory: ``create_app(settings)``.

Resources (database, HTTP clients, keys, models) are opened and closed in ``cleanup_ctx`` in
the order they depend on each other.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from service.auth.tokens import LocalIssuer, TokenVerifier
from service.checks.evidence import Evidence
from service.checks.fetch import make_fetch_session
from service.checks.store import CheckService
from service.detection.detector import Detector
from service.detection.faces import FaceFinder
from service.detection.models import load_ensemble
from service.detection.preprocess import use_opencv_threads
from service.errors import error_middleware
from service.keys import (
    AUTH_LIMITER,
    CHECKS,
    DB,
    DETECTOR,
    FETCH_HTTP,
    HTTP,
    ISSUER,
    JOBS,
    LOGIN_THROTTLE,
    NEAR,
    POOLS,
    RATE_LIMITER,
    SETTINGS,
    VERIFIER,
    VIDEO,
)
from service.mail import alerts
from service.mail.sender import mail_ctx
from service.moderation import queue
from service.moderation.near import NearDuplicates
from service.pdq.faces import Limits
from service.pools import pools_ctx
from service.provenance.credentials import CredentialReader, load_trust_anchors
from service.ratelimit import FailureLock, RateLimiter, WindowLimiter
from service.routes import add_routes
from service.settings import ISSUER_FILE, Settings
from service.store import open_database
from service.video.jobs import JobService
from service.video.service import VideoChecks

log = logging.getLogger("service")


async def database_ctx(app: web.Application):
    app[DB] = await open_database(app[SETTINGS])
    s = app[SETTINGS]
    app[RATE_LIMITER] = WindowLimiter(app[DB], s.rate_limit_per_minute, prefix="checks:")
    app[AUTH_LIMITER] = RateLimiter(app[DB], s.auth_attempts_per_minute, prefix="signin:")
    app[LOGIN_THROTTLE] = FailureLock(app[DB], s.login_max_failures, s.login_lockout_s)
    yield
    await app[DB].close()


async def http_ctx(app: web.Application):
    s = app[SETTINGS]
    app[HTTP] = aiohttp.ClientSession()
    app[FETCH_HTTP] = make_fetch_session(s.fetch_allow_private, app[POOLS].dns)
    yield
    await app[FETCH_HTTP].close()
    await app[HTTP].close()


async def auth_ctx(app: web.Application):
    s = app[SETTINGS]
    issuer = None if s.jwks_url else LocalIssuer(s.data_dir / "keys", s.issuer, s.token_ttl_s)
    if issuer is not None:  # `python -m service token` signs for this issuer
        (s.data_dir / "keys" / ISSUER_FILE).write_text(s.issuer + "\n", encoding="utf-8")
    app[ISSUER] = issuer
    app[VERIFIER] = TokenVerifier(
        issuer=s.issuer, allowed_origins=s.origins, leeway_s=s.clock_skew_s, local=issuer,
        jwks_url=s.jwks_url, jwks_cache_s=s.jwks_cache_s, http=app[HTTP])
    yield


async def detector_ctx(app: web.Application):
    s = app[SETTINGS]
    use_opencv_threads(s.opencv_threads)
    ensemble = load_ensemble(s.models_dir, s.device, s.inference_threads)
    detector = Detector(ensemble, max_batch=s.batch_max_size, max_wait_ms=s.batch_max_wait_ms,
                        max_image_pixels=s.max_image_pixels, finder=FaceFinder(s.models_dir))
    detector.start()
    app[DETECTOR] = detector
    evidence = Evidence(CredentialReader(load_trust_anchors(s.c2pa_trust_anchors)),
                        workers=s.evidence_threads)
    app[NEAR] = NearDuplicates(
        s.pdq_max_distance, s.pdq_min_quality, s.pdq_window_max_distance,
        Limits(s.pdq_max_face_difference_same_framing, s.pdq_max_face_difference))
    await app[NEAR].refresh(app[DB])  # load the stored hashes before the first check waits on it
    app[CHECKS] = CheckService(app[DB], detector, override_for=queue.override,
                               after_check=check_callback(s.public_url.rstrip("/")),
                               evidence=evidence, near=app[NEAR])
    log.info("models %s (trained=%s) on %s", ensemble.version, ensemble.trained,
             ensemble.providers)
    yield
    await detector.stop()
    evidence.close()


async def video_ctx(app: web.Application):
    """Video checks: jobs and the video pool (decoding and face finding apart from images')."""
    s = app[SETTINGS]
    app[JOBS] = JobService(app[DB], max_running=s.video_max_jobs, max_queued=s.video_max_queued,
                           timeout_s=s.video_job_timeout_s)
    checks = app[CHECKS]
    app[VIDEO] = VideoChecks(s, checks, app[DETECTOR], app[JOBS],
                             checks.evidence.reader if checks.evidence is not None else None)
    yield
    await app[JOBS].close()
    app[VIDEO].close()


def check_callback(base_url: str):
    """What storing a check sets off, in its transaction: the moderation queue counts or flags
    the image, and a fake verdict mails its owner if they asked for alerts."""
    async def after_check(tx, check: dict, user_id: str | None, hits=()) -> None:
        await queue.record_sighting(tx, check, hits)
        if user_id is not None and check["verdict"] == "fake":
            await alerts.fake_alert(tx, check, user_id, base_url)
    return after_check


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings.from_env()
    app = web.Application(client_max_size=max(settings.max_body_bytes, settings.video_max_bytes),
                          middlewares=[error_middleware])
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([pools_ctx, database_ctx, http_ctx, auth_ctx, detector_ctx, video_ctx])
    app.cleanup_ctx.append(mail_ctx)  # the outbox sender (sets app[MAIL])
    add_routes(app)
    return app

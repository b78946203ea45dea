"""Health and the JWKS of the local issuer (the OpenAPI description is served by ``routes``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service import __version__
from service.checks import limits
from service.errors import not_found
from service.keys import DETECTOR, ISSUER, SETTINGS


def video_sampling(s) -> dict:
    """How videos are sampled and what a frame sequence may hold: the browser extension captures
    streams at this rate and within these limits (it keeps no copy of them)."""
    return {"sample_rate": s.video_sample_rate, "sample_seconds": s.video_sample_seconds,
            "max_frames": s.video_max_frames, "max_side": s.video_max_side,
            "max_pixels": s.video_max_pixels}


async def health(request: web.Request) -> web.Response:
    detector = request.app[DETECTOR]
    models = detector.ensemble.describe()
    return web.json_response({
        "status": "ok",
        "version": __version__,
        "trained": models["trained"],
        "providers": models["providers"],
        "models": models,
        "thresholds": limits.thresholds(detector.ensemble),
        "video": video_sampling(request.app[SETTINGS]),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "batching": {
            "max_batch": detector.batcher.max_batch,
            "max_wait_ms": detector.batcher.max_wait * 1000.0,
            "batches_run": detector.batcher.batches,
            "rows_run": detector.batcher.rows,
        },
    })


async def jwks(request: web.Request) -> web.Response:
    issuer = request.app[ISSUER]
    if issuer is None:
        raise not_found("this service uses an external issuer")
    return web.json_response(issuer.jwks(), headers={"Cache-Control": "public, max-age=300"})

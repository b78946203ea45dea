"""Health and the JWKS of the local issuer (the OpenAPI description is served by ``routes``)."""

from __future__ import annotations

from aiohttp import web

from service import __version__
from service.checks import limits
from service.errors import not_found
from service.keys import DETECTOR, ISSUER


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

"""The one-request-one-inference baseline: how the seed systems serve (``python -m bench.baseline_app``).

A minimal aiohttp server with one route, ``POST /predict`` (multipart ``image`` ->
``{"result", "confidence"}``, the seed systems' shape). Each request is handled the way a
threaded Flask/WSGI server with ``model.predict`` handles it: on its own thread, it decodes the
image, finds the faces, cuts the views and runs every detector on that one image (batch = the
views of one image), then answers. There is no batching, no store, no auth and no cache.

The model work per image is exactly the service's: the same `prepare`, the same ensemble
sessions (``load_ensemble`` with the service's REALCHECK_* settings) and the same post-processing
(`Detector.summarize`), so the difference to the service is the serving strategy alone.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from service.detection.detector import Detector, prepare
from service.detection.models import load_ensemble
from service.detection.preprocess import ImageError, use_opencv_threads
from service.settings import Settings

DETECTOR = web.AppKey("detector", Detector)
POOL = web.AppKey("pool", ThreadPoolExecutor)
#: a thread per concurrent request, as a threaded WSGI server gives (the bench uses at most 32).
THREADS = 64


def infer_one(detector: Detector, data: bytes) -> dict:
    prep = prepare(data, detector.spec, detector.max_image_pixels, detector.finder)
    if not prep.face_found:
        return {"result": None, "confidence": None}
    [scored] = detector.score_many([prep])
    result, _grids, _thumb = detector.summarize(prep, *scored)
    return {"result": result["label"], "confidence": result["confidence"]}


async def predict(request: web.Request) -> web.Response:
    data = None
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "image":
                data = await part.read()
                break
    if not data:
        return web.json_response({"error": "missing_image", "message": "send a multipart 'image'"},
                                 status=400)
    loop = asyncio.get_running_loop()
    try:
        body = await loop.run_in_executor(request.app[POOL], infer_one, request.app[DETECTOR], data)
    except ImageError as e:
        return web.json_response({"error": e.code, "message": e.message}, status=400)
    return web.json_response(body)


async def health(request: web.Request) -> web.Response:
    ens = request.app[DETECTOR].ensemble
    return web.json_response({"status": "ok", "providers": ens.providers, "trained": ens.trained,
                              "models": ens.describe(), "batching": None})


async def models_ctx(app: web.Application):
    s = Settings.from_env()
    use_opencv_threads(s.opencv_threads)  # as the service does
    ensemble = load_ensemble(s.models_dir, s.device, s.inference_threads)
    # The Detector's own batcher is never started: only its spec and model code are used.
    app[DETECTOR] = Detector(ensemble, max_batch=1, max_wait_ms=0.0,
                             max_image_pixels=s.max_image_pixels, prepare_workers=1)
    app[POOL] = ThreadPoolExecutor(THREADS, thread_name_prefix="request")
    yield
    app[POOL].shutdown(wait=True, cancel_futures=True)
    app[DETECTOR].prepare_pool.shutdown(wait=False)
    app[DETECTOR].infer_pool.shutdown(wait=False)


def create_app() -> web.Application:
    app = web.Application(client_max_size=Settings().max_body_bytes)
    app.cleanup_ctx.append(models_ctx)
    app.router.add_get("/health", health)
    app.router.add_post("/predict", predict)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    s = Settings.from_env()
    web.run_app(create_app(), host=s.host, port=s.port, print=None)

"""Raw ONNX Runtime figures: the service's model work per image, without a server around it.

Every image goes through the service's own `prepare` (decode, BlazeFace, aligned crops, views), and
the batches go through the service's own `Detector.score_many` (the cascade's rounds: every face's
first view, then all views of the faces near a verdict boundary; each round one run of every
ensemble member's session), so "per image" means the same detectors, faces and views as a check.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

import numpy as np

from bench.images import BenchImage
from service.detection.detector import Detector, prepare
from service.detection.models import load_ensemble
from service.detection.preprocess import use_opencv_threads
from service.settings import Settings

BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def _timed(fn, *args) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU counts every thread of this process (ORT's, OpenCV's)."""
    t, c = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - t, time.process_time() - c


def measure_raw(images: list[BenchImage], settings: Settings, *, seconds_per_batch: float,
                repeats: int = 3, rounds: int = 3, batch_sizes=BATCH_SIZES) -> dict:
    use_opencv_threads(settings.opencv_threads)  # as the service does
    ensemble = load_ensemble(settings.models_dir, settings.device, settings.inference_threads)
    detector = Detector(ensemble, max_batch=1, max_wait_ms=0.0,
                        max_image_pixels=settings.max_image_pixels, prepare_workers=1)
    try:
        return _measure(detector, images, seconds_per_batch, repeats, rounds, batch_sizes)
    finally:
        detector.prepare_pool.shutdown(wait=False)
        detector.infer_pool.shutdown(wait=False)
        del detector, ensemble
        gc.collect()  # the sessions' thread pools must not linger into the load phase


def _measure(detector: Detector, images, seconds_per_batch, repeats, rounds, batch_sizes) -> dict:
    spec, max_px, finder = detector.spec, detector.max_image_pixels, detector.finder
    run = detector.score_many
    preps = [prepare(im.data, spec, max_px, finder) for im in images]
    # An image where no face is found costs its `prepare` and no model run, as in a check: such
    # images stay in the sample, which is then the same mix as the service's requests.
    if not any(p.face_found for p in preps):
        raise SystemExit("no face found in any benchmark image")
    # first run allocates; it also tells how many rows (views) each image's faces cost
    # (a row is a view any member scored: with the view cascade the first member, vgg16, scores
    # only the faces sent on to every view, so counting its rows alone took most images for
    # faceless ones, which the batched trials then skipped: runs before 2026-11-30 13:00 UTC)
    rows_of = [0 if lo is None else int((~np.isnan(lo)).any(axis=1).sum())
               for lo, *_ in run(preps)]
    # Per image, one at a time: what a lone request costs without a server.
    prep_ms, infer_ms, single_ms, prep_cpu_ms, infer_cpu_ms = [], [], [], [], []
    for im, p in zip(images, preps):
        tp = [_timed(prepare, im.data, spec, max_px, finder) for _ in range(repeats)]
        ti = [_timed(run, [p]) if p.face_found else (0.0, 0.0) for _ in range(repeats)]
        prep_ms.append(statistics.median(w for w, _ in tp) * 1000)
        infer_ms.append(statistics.median(w for w, _ in ti) * 1000)
        single_ms.append(prep_ms[-1] + infer_ms[-1])
        prep_cpu_ms.append(statistics.median(c for _, c in tp) * 1000)
        infer_cpu_ms.append(statistics.median(c for _, c in ti) * 1000)
    # Batched: consecutive images of the set, cycling. The batch sizes take turns over a few
    # rounds and each keeps its best round, so a burst of other load on the machine hits one
    # round of one size rather than a whole size.
    picks = {b: [[(start + i) % len(preps) for i in range(b)]
                 for start in range(0, max(len(preps), b), b)] for b in batch_sizes}
    inputs = {b: [[preps[i] for i in pick] for pick in picks[b]] for b in batch_sizes}
    rows = {b: [sum(rows_of[i] for i in pick) for pick in picks[b]] for b in batch_sizes}
    for b, xs in inputs.items():
        for x, r in zip(xs, rows[b]):
            if r:
                run(x)  # warm every shape
                break
    trials: dict[int, list[dict]] = {b: [] for b in batch_sizes}
    for _ in range(rounds):
        for b in batch_sizes:
            trials[b].append(_batched_trial(run, inputs[b], rows[b], b,
                                            seconds_per_batch / rounds))
    batches = [max(trials[b], key=lambda r: r["img_per_s"]) for b in batch_sizes]
    find_ms = _face_finder_ms(finder, images)
    best = max(batches, key=lambda r: r["img_per_s"])
    cores = os.cpu_count() or 1
    prep_cpu = statistics.fmean(prep_cpu_ms)
    return {
        "images": len(images),
        "faces_per_image": statistics.fmean(len(p.boxes) for p in preps),
        "by_source": {src: sum(im.source == src for im in images)
                      for src in dict.fromkeys(im.source for im in images)},
        "face_found_share": statistics.fmean(p.face_found for p in preps),
        "rows_per_image": statistics.fmean(rows_of),
        "rows_by_image": rows_of,
        "views_per_face": detector.views_per_face,
        "members": [m.name for m in detector.ensemble.members],
        "prepare_ms": _dist(prep_ms),
        "infer_single_ms": _dist(infer_ms),
        "single_image_ms": _dist(single_ms),  # prepare + inference of one image: the p50 reference
        "prepare_cpu_ms": _dist(prep_cpu_ms),
        "infer_single_cpu_ms": _dist(infer_cpu_ms),
        # If every core did nothing but this work: prepare's CPU plus batched inference's CPU.
        "cpu_bound_ceiling_img_per_s": round(cores * 1000 / (prep_cpu + best["cpu_ms_per_image"]), 2),
        "by_source_prepare_ms": {
            src: round(statistics.median(t for im, t in zip(images, prep_ms) if im.source == src), 2)
            for src in dict.fromkeys(im.source for im in images)},
        "batched": batches,
        "best": best,
        "find_faces_ms": find_ms,
    }


def _face_finder_ms(finder, images, sides=(256, 512, 1024), repeats: int = 20) -> dict:
    """Median ms of `FaceFinder.find` on the largest bench image resized to each side."""
    import cv2

    from service.detection import preprocess as pp

    img = max((pp.decode_image(im.data) for im in images), key=lambda a: a.shape[0] * a.shape[1])
    out = {}
    for side in sides:
        f = side / max(img.shape[:2])
        x = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)))
        finder.find(x)
        ts = [_timed(finder.find, x)[0] for _ in range(repeats)]
        out[str(side)] = round(statistics.median(ts) * 1000, 2)
    return out


def _batched_trial(run, xs: list, xrows: list[int], b: int, seconds: float) -> dict:
    """Whole passes over the batches until ``seconds`` have passed: every image of the set
    counts equally (a trial cut short would always measure the same first images)."""
    done, rows, t0, c0 = 0, 0, time.perf_counter(), time.process_time()
    while True:
        j = (done // b) % len(xs)
        if xrows[j]:  # a batch of faceless images runs no model
            run(xs[j])
        done += b
        rows += xrows[j]
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and done % (b * len(xs)) == 0:
            break
    cpu = time.process_time() - c0
    return {"batch_images": b, "rows_per_batch": round(rows * b / done, 2),
            "img_per_s": round(done / elapsed, 3), "ms_per_batch": round(elapsed * 1000 * b / done, 3),
            "cpu_ms_per_image": round(cpu * 1000 / done, 3)}


def _dist(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "mean": round(statistics.fmean(values), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}

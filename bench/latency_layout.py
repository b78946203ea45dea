"""One check at a time: where its wall time goes, and layouts tried for it (issue 8, 1 client).

    python -m bench.latency_layout [--checks 192]            # the variants, in turn
    python -m bench.latency_layout --timeline [--checks 192]  # offsets of each step
    python -m bench.latency_layout --stored                   # CPU of answers from the store

The real app (`create_app`, SQLite in a temporary folder), no HTTP; new pictures of the bench's
pool, one check at a time. Variants take turns eight pictures at a time (the sources take turns
within eight), each against the current layout and against the same picture's `prepare` +
inference alone (`Detector.score_many`). They are measures, not configurations: the service
does not offer them.

* ``pdq-late``: the PDQ hash starts when `prepare` has finished (beside inference) instead of
  as soon as the image is decoded (beside the face finding);
* ``nice``: the evidence threads at CPU priority +10 (Linux);
* ``cv-1``: OpenCV on one thread;
* ``switch``: the interpreter's thread switch interval 0.5 ms (default 5);
* ``no-evidence``: no evidence step (no PDQ hash, no provenance, so no near-duplicate lookup).

``--timeline``: median offsets from a check's start of `prepare`, the PDQ hash, each model run,
the summary and the transaction. ``--stored``: process CPU per check of an image already
stored (a cache hit) and per lookup by hash, over 64 stored pictures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
from aiohttp.test_utils import TestServer

import service.checks.evidence as evidence_module
import service.detection.detector as detector_module
from bench.images import image_pool
from service.app import create_app
from service.keys import CHECKS, DB, DETECTOR
from service.settings import Settings

VARIANTS = ("pdq-late", "nice", "cv-1", "switch", "no-evidence")
_prepare = detector_module.prepare
_late = [False]


def _prepare_hook(data, spec, max_px, finder, on_decoded=None):
    """`prepare`, handing the decoded pixels over at its end when ``_late`` is set."""
    if not _late[0] or on_decoded is None:
        return _prepare(data, spec, max_px, finder, on_decoded)
    decoded = []
    prep = _prepare(data, spec, max_px, finder, decoded.append)
    on_decoded(decoded[0])
    return prep


@contextlib.asynccontextmanager
async def _app():
    with tempfile.TemporaryDirectory() as d:
        app = create_app(Settings.from_env({}, data_dir=Path(d)))
        server = TestServer(app)
        await server.start_server()
        try:
            yield app
        finally:
            await server.close()


def _alone(detector, data: bytes) -> None:
    p = _prepare(data, detector.spec, detector.max_image_pixels, detector.finder)
    if p.face_found:
        detector.score_many([p])


async def _evidence_threads(checks) -> list[int]:
    ids: set[int] = set()

    def record() -> None:
        ids.add(threading.get_native_id())
        time.sleep(0.05)

    for f in [checks.evidence.pool.submit(record) for _ in range(4)]:
        f.result()
    return sorted(ids)


async def variants(n: int) -> None:
    detector_module.prepare = _prepare_hook
    pool = image_pool()
    async with _app() as app:
        checks, detector = app[CHECKS], app[DETECTOR]
        for im in pool[-16:]:
            await checks.check(im.data, None)  # warm-up
        threads = await _evidence_threads(checks)
        evidence, switch, cv_threads = checks.evidence, sys.getswitchinterval(), cv2.getNumThreads()
        base = os.getpriority(os.PRIO_PROCESS, 0)
        for name in VARIANTS:
            ms: dict[str, list[float]] = {"variant": [], "current": [], "alone": []}
            start = VARIANTS.index(name) * n
            for k, im in enumerate(pool[start:start + n]):
                on = (k // 8) % 2 == 1
                _late[0] = on and name == "pdq-late"
                checks.evidence = None if on and name == "no-evidence" else evidence
                sys.setswitchinterval(0.0005 if on and name == "switch" else switch)
                cv2.setNumThreads(1 if on and name == "cv-1" else cv_threads)
                for t in threads:
                    os.setpriority(os.PRIO_PROCESS, t, base + (10 if on and name == "nice" else 0))
                t0 = time.perf_counter()
                await checks.check(im.data, "bench")
                ms["variant" if on else "current"].append(1e3 * (time.perf_counter() - t0))
                t0 = time.perf_counter()
                await asyncio.to_thread(_alone, detector, im.data)
                ms["alone"].append(1e3 * (time.perf_counter() - t0))
            _late[0] = False
            checks.evidence = evidence
            sys.setswitchinterval(switch)
            cv2.setNumThreads(cv_threads)
            print(f"{name:<12} check p50 {statistics.median(ms['variant']):6.1f} ms; current layout"
                  f" {statistics.median(ms['current']):6.1f} ms; prepare + inference alone"
                  f" {statistics.median(ms['alone']):6.1f} ms", flush=True)


async def timeline(n: int) -> None:
    events: list[tuple[str, float]] = []

    def timed(name, fn):
        def run(*args, **kwargs):
            events.append((name + " start", time.perf_counter()))
            try:
                return fn(*args, **kwargs)
            finally:
                events.append((name + " end", time.perf_counter()))
        return run

    detector_module.prepare = timed("prepare", _prepare)
    evidence_module.fingerprint = timed("PDQ hash", evidence_module.fingerprint)
    pool = image_pool()
    async with _app() as app:
        checks, detector, db = app[CHECKS], app[DETECTOR], app[DB]
        detector.batcher.run = timed("model run", detector.batcher.run)
        detector.summarize = timed("summary", detector.summarize)
        transaction = db.transaction

        @contextlib.asynccontextmanager
        async def timed_transaction():
            events.append(("transaction start", time.perf_counter()))
            async with transaction() as tx:
                yield tx
            events.append(("transaction end", time.perf_counter()))

        db.transaction = timed_transaction
        for im in pool[-16:]:
            await checks.check(im.data, None)
        offsets = collections.defaultdict(list)
        for im in pool[:n]:
            events.clear()
            t0 = time.perf_counter()
            await checks.check(im.data, "bench")
            offsets["answer"].append(1e3 * (time.perf_counter() - t0))
            seen: collections.Counter = collections.Counter()
            for name, t in events:
                seen[name] += 1
                offsets[f"{name} #{seen[name]}"].append(1e3 * (t - t0))
    for name, v in sorted(offsets.items(), key=lambda kv: statistics.median(kv[1])):
        print(f"{name:<24} {len(v):4d} checks, median offset {statistics.median(v):6.2f} ms")


async def stored() -> None:
    pool = image_pool()[:64]
    async with _app() as app:
        checks = app[CHECKS]
        hashes = [(await checks.check(im.data, "bench"))["sha256"] for im in pool]
        for name, call in (("cache hit", lambda k: checks.check(pool[k].data, "bench")),
                           ("lookup by hash", lambda k: checks.lookup(hashes[k], "bench"))):
            c, t = time.process_time(), time.perf_counter()
            for k in range(256):
                await call(k % 64)
            print(f"{name:<15} CPU {1e3 * (time.process_time() - c) / 256:5.2f} ms, wall"
                  f" {1e3 * (time.perf_counter() - t) / 256:5.2f} ms per request")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checks", type=int, default=192)
    ap.add_argument("--timeline", action="store_true")
    ap.add_argument("--stored", action="store_true")
    a = ap.parse_args()
    if a.timeline:
        asyncio.run(timeline(a.checks))
    elif a.stored:
        asyncio.run(stored())
    else:
        asyncio.run(variants(a.checks))


if __name__ == "__main__":
    main()

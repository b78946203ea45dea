"""What the evidence step costs a lone check in wall time: ``python -m bench.evidence_latency``.

The real app (`create_app`, SQLite in a temporary folder), one check at a time through
``CheckService.check`` (no HTTP) on new pictures of the bench's pool, taking turns over three
ways of running the evidence step: as the service does (provenance, then the PDQ hash beside the
detectors), with a sleep of the hash's own CPU time in place of the hash (same hand-overs, no
CPU), and without the step. The turns rotate over the sources, so each way sees the same mix.
Then the interpreter lock: a thread's wake-up latency after a short sleep, while another thread
hashes the pictures without pause (how long the hash keeps the lock at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

from aiohttp.test_utils import TestServer

from bench.profile_check import _images, unique
from service.app import create_app
from service.checks import evidence
from service.detection.preprocess import decode_image
from service.keys import CHECKS
from service.pdq.hashing import fingerprint
from service.settings import Settings

WAYS = ("service", "sleep instead of the hash", "no evidence step")


async def lone_checks(n: int, hash_ms: float) -> dict[str, list[float]]:
    _, warm, rest = _images()
    way = {"now": WAYS[0]}
    real = evidence.fingerprint

    def hash_or_sleep(image):
        if way["now"] == WAYS[1]:
            time.sleep(hash_ms / 1000)
            return real(image[:16, :16])
        return real(image)

    evidence.fingerprint = hash_or_sleep
    out: dict[str, list[float]] = {w: [] for w in WAYS}
    try:
        with tempfile.TemporaryDirectory() as d:
            app = create_app(Settings.from_env({}, data_dir=Path(d)))
            server = TestServer(app)
            await server.start_server()
            checks = app[CHECKS]
            step = checks.evidence
            for k, im in enumerate(warm):
                await checks.check(unique(im.data, 10**6 + k), None)
            for k, im in enumerate(rest[:n]):
                # the pool interleaves its 8 sources: picture k is source k % 8; each block
                # of 8 shifts the ways by one, so every source meets every way in turn
                way["now"] = WAYS[(k % 8 + k // 8) % len(WAYS)]
                checks.evidence = None if way["now"] == WAYS[2] else step
                started = time.perf_counter()
                await checks.check(unique(im.data, k), None)
                out[way["now"]].append((time.perf_counter() - started) * 1e3)
            checks.evidence = step
            await server.close()
    finally:
        evidence.fingerprint = real
    return out


def wake_up_latency(images, rounds: int = 2000) -> dict[str, float]:
    """ms a thread oversleeps a 0.2 ms sleep: alone, and while another thread hashes."""
    def measure() -> list[float]:
        late = []
        for _ in range(rounds):
            t = time.perf_counter()
            time.sleep(0.0002)
            late.append((time.perf_counter() - t - 0.0002) * 1e3)
        return sorted(late)

    alone = measure()
    stop = threading.Event()

    def hash_all():
        while not stop.is_set():
            for im in images:
                fingerprint(im)

    worker = threading.Thread(target=hash_all)
    worker.start()
    try:
        beside = measure()
    finally:
        stop.set()
        worker.join()
    q = lambda xs, f: round(xs[min(len(xs) - 1, int(f * len(xs)))], 3)  # noqa: E731
    return {"alone_p50": q(alone, 0.5), "alone_p99": q(alone, 0.99),
            "beside_hash_p50": q(beside, 0.5), "beside_hash_p99": q(beside, 0.99)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checks", type=int, default=288, help="lone checks in all (3 ways)")
    a = ap.parse_args(argv)
    images, _, _ = _images()
    decoded = [decode_image(im.data) for im in images]
    started = time.thread_time()
    for im in decoded:
        fingerprint(im)
    hash_ms = (time.thread_time() - started) * 1e3 / len(decoded)
    print(f"PDQ hash alone: {hash_ms:.2f} ms of CPU per picture (mean)")
    for way, ms in asyncio.run(lone_checks(a.checks, hash_ms)).items():
        print(f"lone check, {way:26s} n={len(ms):4d}  median {statistics.median(ms):6.2f} ms"
              f"  mean {statistics.fmean(ms):6.2f}")
    print("wake-up latency (ms over a 0.2 ms sleep):", wake_up_latency(decoded))


if __name__ == "__main__":
    main()

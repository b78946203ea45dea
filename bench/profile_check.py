"""Where a check's CPU goes inside the service: every thread, per function, per check.

    pip install -e ".[cpu,profile]"; python -m bench.profile_check [--checks 64] [--top 30]

The real app (`create_app`, SQLite in a temporary folder) with its pools and batcher; each check
goes through ``CheckService.check`` (no HTTP), eight at a time, on the bench images made unique
by a JPEG comment as in `bench.run_bench`. yappi's CPU clock covers all threads; its own overhead
inflates the total (compare "CPU per check" with `make bench`'s server CPU), not the ranking.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestServer

from bench.images import sample_images
from service.app import create_app
from service.keys import CHECKS
from service.settings import Settings


def unique(data: bytes, k: int) -> bytes:
    """The same JPEG with a comment segment after SOI: same pixels, new SHA-256."""
    text = b"realcheck-profile %08d" % k
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


async def run(checks_n: int, top: int) -> None:
    import yappi

    images = sample_images(8)
    with tempfile.TemporaryDirectory() as d:
        app = create_app(Settings.from_env({}, data_dir=Path(d)))
        server = TestServer(app)
        await server.start_server()
        checks = app[CHECKS]

        async def one(k: int) -> None:
            await checks.check(unique(images[k % len(images)].data, k), None)

        await asyncio.gather(*(one(10**6 + k) for k in range(8)))  # warm-up
        yappi.set_clock_type("cpu")
        yappi.start()
        started = time.process_time()
        for b in range(0, checks_n, 8):
            await asyncio.gather(*(one(k) for k in range(b, min(b + 8, checks_n))))
        cpu = time.process_time() - started
        yappi.stop()
        await server.close()
    print(f"{checks_n} checks; CPU per check (with the profiler's overhead) {cpu / checks_n * 1e3:.1f} ms")
    print("total ms per check (inclusive), the service's functions:")
    stats = [s for s in yappi.get_func_stats() if "/service/" in s.module]
    for s in sorted(stats, key=lambda s: -s.ttot)[:top]:
        print(f"{s.ttot / checks_n * 1e3:8.2f}  {s.name}  ({Path(s.module).name})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checks", type=int, default=64)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args(argv)
    asyncio.run(run(a.checks, a.top))


if __name__ == "__main__":
    main()

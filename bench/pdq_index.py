"""Near-duplicate lookups at scale: ``python -m bench.pdq_index [--sizes 100000 1000000]``.

Fills a `service.pdq.index.HashIndex` with N random 256-bit hashes (uniform random bits: the
hardest case for bucket sizes is skew, so the figures also give the candidates visited), then
times look-ups at the service's threshold (31 bits): half are stored hashes with 0-31 bits
flipped (hits), half fresh random hashes (misses). Memory is the index's own arrays, and the
process's peak RSS growth while building. Wall time per look-up is given with the thread's CPU
time, as on a shared machine the wall time's tail is time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np

from service.pdq.index import HashIndex


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flip(words: np.ndarray, bits: np.ndarray) -> np.ndarray:
    out = words.copy()
    for b in bits:
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def run(n: int, queries: int, threshold: int, rng: np.random.Generator) -> dict:
    words = rng.integers(0, 1 << 63, (n, 4), dtype=np.uint64) << np.uint64(1)
    words |= rng.integers(0, 2, (n, 4), dtype=np.uint64)
    before = rss_mib()
    index = HashIndex()
    t = time.perf_counter()
    index.add_words(words, range(n))
    index.build()
    build_s = time.perf_counter() - t
    probes = []
    for i in range(queries):
        if i % 2 == 0:
            src = words[rng.integers(0, n)]
            q = flip(src, rng.choice(256, int(rng.integers(0, threshold + 1)), replace=False))
        else:
            q = rng.integers(0, 1 << 63, 4, dtype=np.uint64) << np.uint64(1)
        probes.append(q.astype(">u8").tobytes().hex())
    times, cpu, found = [], [], 0
    for h in probes:
        t, c = time.perf_counter(), time.thread_time()
        hits = index.search(h, threshold)
        cpu.append(time.thread_time() - c)
        times.append(time.perf_counter() - t)
        found += bool(hits)
    ms = np.array(times) * 1000
    cpu_ms = np.array(cpu) * 1000
    return {"hashes": n, "build_s": round(build_s, 2), "index_mib": round(index.nbytes / 2**20, 1),
            "peak_rss_growth_mib": round(rss_mib() - before, 1), "lookups": queries,
            "lookups_with_a_hit": found, "mean_ms": round(float(ms.mean()), 3),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3),
            "cpu_mean_ms": round(float(cpu_ms.mean()), 3),
            "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 3),
            "load_average": [round(x, 1) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threshold", type=int, default=31)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results = [run(n, args.queries, args.threshold, rng) for n in args.sizes]
    report = {"threshold": args.threshold, "results": results,
              "machine": f"{platform.machine()}, Python {platform.python_version()},"
                         f" numpy {np.__version__}"}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()

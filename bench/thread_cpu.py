"""Where the service's CPU goes, thread by thread, under load: ``python -m bench.thread_cpu``.

``python -m bench.thread_cpu [--clients 1,32] [--duration 15] [--json F]``

Starts the service (`python -m service`, as `make bench` does: a temporary data folder, the rate
limit off), warms it with 20 pictures, then for each number of clients runs the bench's
unique-image load (`bench.run_bench.UniqueImages`: every picture new to the server) and reads
each thread's CPU time from ``/proc/PID/task/TID/stat`` before and after. The service names its
pool threads in the OS (`service.threads`), so the CPU splits into the event loop (the main
thread: HTTP, auth, the answer, the near-duplicate index, every hand-over between threads), the
prepare pool (decode, face finding, views, thumbnail), the inference thread (the batched model
runs), the evidence pool (provenance and the PDQ hash) and the rest (SQLite's connection thread
and any other). Figures are per checked image and in cores (CPU seconds per second); Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from pathlib import Path

from bench import load
from bench.images import image_pool
from bench.run_bench import UniqueImages, _headers, _warm, expect_fresh_check
from bench.servers import start_server, stat_cpu


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """{thread id: (group, CPU seconds so far)} of every thread of the process."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            cpu = stat_cpu(Path(f"/proc/{pid}/task/{tid}/stat"))
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (group(comm, int(tid) == pid), cpu)
    return out


def group(comm: str, main: bool) -> str:
    if main:
        return "event loop (main thread)"
    pool = re.sub(r"_\d+$", "", comm)
    return pool if pool != comm else "other (SQLite, ...)"


def split(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per thread group between two `thread_cpu` readings."""
    out: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        out[name] = out.get(name, 0.0) + cpu - before.get(tid, (name, 0.0))[1]
    return out


async def run(clients_list: list[int], duration: float) -> list[dict]:
    results = []
    with start_server("service", {}) as server:
        headers = _headers(server)
        pictures = UniqueImages(image_pool(spill=252), "/v1/checks")
        await _warm(server, headers, pictures, expect_fresh_check, 20)
        for clients in clients_list:
            before, started = thread_cpu(server.proc.pid), time.monotonic()
            result = await load.run_load(server.url, headers, pictures, expect_fresh_check,
                                         clients=clients, duration_s=duration,
                                         max_requests=100_000)
            used = split(before, thread_cpu(server.proc.pid))
            wall = time.monotonic() - started
            n = max(1, result.requests)
            results.append({
                "clients": clients, **result.summary(),
                "server_cores": round(sum(used.values()) / wall, 3),
                "server_cpu_ms_per_image": round(sum(used.values()) * 1e3 / n, 2),
                "threads": {k: {"cores": round(v / wall, 3), "ms_per_image": round(v * 1e3 / n, 2)}
                            for k, v in sorted(used.items(), key=lambda kv: -kv[1])},
            })
    return results


def table(results: list[dict]) -> str:
    names = list(dict.fromkeys(k for r in results for k in r["threads"]))
    head = "| threads | " + " | ".join(f"{r['clients']} client(s): ms/img, cores"
                                        for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for k in names:
        cells = [f"{r['threads'][k]['ms_per_image']:.1f}, {r['threads'][k]['cores']:.2f}"
                 if k in r["threads"] else "-" for r in results]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("| **all** | " + " | ".join(
        f"**{r['server_cpu_ms_per_image']:.1f}**, {r['server_cores']:.2f}" for r in results) + " |")
    lines.append("| img/s, p50 ms | " + " | ".join(
        f"{r['img_per_s']:.1f}, {r['p50_ms']:.1f}" for r in results) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1,32")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    results = asyncio.run(run([int(c) for c in a.clients.split(",")], a.duration))
    for r in results:
        if r["errors"]:
            raise SystemExit(f"{r['errors']} wrong answers at {r['clients']} clients: "
                             f"{r['error_samples']}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()

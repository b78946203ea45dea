"""Two service replicas on one PostgreSQL against one replica: ``python -m bench.replicas``.

``make bench`` runs it after the main benchmark. It starts a throwaway PostgreSQL server (the
binaries on PATH; durable settings: fsync and synchronous commit on), then measures, with the
same closed-loop load generator as ``bench.run_bench``:

- ``sqlite x1``: one replica on its SQLite file (the default install), for reference;
- ``postgres x1``: one replica on PostgreSQL;
- ``postgres x2``: two replicas on the same PostgreSQL database, the clients split evenly
  between them (what a round-robin load balancer does).

The per-user rate limit is on (a bucket in the database, high enough never to refuse), so each
request pays for it as in a deployment. Two workloads: ``fresh`` (every image new: the
detectors run; inference-bound; distinct pictures from `bench.images.image_pool`, none sent
twice to a configuration, so none is a near-duplicate of an earlier check) and ``lookup``
(``GET /v1/checks?sha256=`` of stored images: no model run; every request is a few short
transactions: the user, the rate-limit bucket, the check row, the queue). On a machine with
few cores the replicas compete for the same cores, so two of
them cannot add throughput there; what they add is capacity on more machines (or GPUs), while
the database keeps the state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench import load
from bench.images import image_pool
from bench.run_bench import UniqueImages, _commit, expect_cached_check, expect_fresh_check
from bench.servers import cpu_model, start_server
from service.auth.tokens import LocalIssuer

PUBLIC_URL = "http://realcheck.bench"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def merged(results: list[load.LoadResult]) -> dict:
    """One summary over the clients of every replica (as the load balancer's clients see it)."""
    out = load.LoadResult()
    out.started = min(r.started for r in results)
    out.last = max(r.last for r in results)
    for r in results:
        out.requests += r.requests
        out.errors += r.errors
        out.error_samples += r.error_samples
        out.latencies_ms += r.latencies_ms
    return out.summary()


async def spread(urls: list[str], headers: dict, factory, check, clients: int, duration_s: float,
                 max_requests: int) -> dict:
    share = [clients // len(urls) + (1 if i < clients % len(urls) else 0) for i in range(len(urls))]
    results = await asyncio.gather(*(
        load.run_load(url, headers, factory, check, clients=n, duration_s=duration_s,
                      max_requests=max_requests) for url, n in zip(urls, share) if n))
    return merged(list(results))


async def measure_config(name: str, urls: list[str], headers: dict, images, clients_list,
                         duration_s: float, max_requests: int) -> list[dict]:
    rows = []
    unique = UniqueImages(images, "/v1/checks")
    await spread(urls, headers, unique, expect_fresh_check, len(urls), 60, 2 * len(urls))  # warm
    for clients in clients_list:
        await spread(urls, headers, unique, expect_fresh_check, clients, 60, clients)  # warm-up
        s = await spread(urls, headers, unique, expect_fresh_check, clients, duration_s, max_requests)
        rows.append({"config": name, "workload": "fresh", "clients": clients, **s})
        log(f"  {name:12s} fresh  {clients:3d} clients: {s['img_per_s']:6.1f} img/s  "
            f"p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  err={s['errors']}")
    lookups = [("GET", f"/v1/checks?sha256={h}", None, None) for _, h in unique.kept]
    for clients in (max(clients_list),):
        s = await spread(urls, headers, load.cycle_requests(lookups), expect_cached_check, clients,
                         duration_s, max_requests * 4)
        rows.append({"config": name, "workload": "lookup", "clients": clients, **s})
        log(f"  {name:12s} lookup {clients:3d} clients: {s['img_per_s']:6.1f} req/s  "
            f"p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  err={s['errors']}")
    return rows


async def run(args) -> dict:
    from tests.support.postgres import postgres_server

    images = image_pool(args.per_source)
    clients_list = [int(c) for c in args.clients.split(",")]
    keys_dir = Path(tempfile.mkdtemp(prefix="realcheck-bench-keys-"))
    issuer = LocalIssuer(keys_dir / "keys", PUBLIC_URL, 3600)
    headers = {"Authorization": "Bearer " + issuer.issue("bench", "user")}
    base = {"REALCHECK_PUBLIC_URL": PUBLIC_URL, "REALCHECK_DATA_DIR": str(keys_dir),
            "REALCHECK_RATE_LIMIT_PER_MINUTE": str(args.rate_limit)}
    rows: list[dict] = []
    started = time.monotonic()
    load_before = list(os.getloadavg())
    with postgres_server(fsync=True) as pg:
        configs = [("sqlite x1", 1, None), ("postgres x1", 1, pg.create_database()),
                   ("postgres x2", 2, pg.create_database())]
        for name, replicas, url in configs:
            if args.only and name.split()[0] not in args.only.split(","):
                continue
            log(f"{name} ...")
            env = dict(base)
            if url:
                env["REALCHECK_DATABASE_URL"] = url
            else:  # its own SQLite file, with the shared signing key next to it
                env["REALCHECK_DATA_DIR"] = str(keys_dir)
            with ExitStack() as stack:
                servers = [stack.enter_context(start_server("service", env)) for _ in range(replicas)]
                rows += await measure_config(name, [s.url for s in servers], headers, images,
                                             clients_list, args.duration, args.max_requests)
    return {
        "meta": {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": "python -m bench.replicas " + " ".join(sys.argv[1:]),
                 "commit": _commit(), "cpu": cpu_model(), "cores": os.cpu_count(),
                 "images": len(images), "duration_s": args.duration,
                 "rate_limit_per_minute": args.rate_limit,
                 "loadavg_before": load_before, "loadavg_after": list(os.getloadavg()),
                 "wall_s": round(time.monotonic() - started, 1)},
        "rows": rows,
    }


def markdown(result: dict) -> str:
    m = result["meta"]
    lines = [f"### Replicas: run of {m['date']}", "",
             f"- Machine: {m['cpu']}, {m['cores']} cores; load average before "
             f"{m['loadavg_before'][0]:.1f}, after {m['loadavg_after'][0]:.1f}",
             f"- Command: `{m['command']}` (commit `{m['commit']}`), {m['duration_s']:.0f} s per "
             f"scenario, a pool of {m['images']} distinct pictures, none sent twice to a "
             "configuration; rate limit "
             + (f"on ({m['rate_limit_per_minute']}/min: every request takes from its bucket in the"
                " database, none is refused)" if m.get("rate_limit_per_minute") else "off"),
             "", "| configuration | workload | clients | requests | req/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['workload']} | {r['clients']} | {r['requests']} | "
                     f"{r['img_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=15.0, help="seconds per scenario (default 15)")
    p.add_argument("--clients", default="2,8,32", help="concurrency levels (default 2,8,32)")
    p.add_argument("--per-source", type=int, default=None,
                   help="distinct pictures per data source (default: all, 252)")
    p.add_argument("--max-requests", type=int, default=5000)
    p.add_argument("--only", help="comma-separated: sqlite,postgres")
    p.add_argument("--rate-limit", type=int, default=1_000_000,
                   help="REALCHECK_RATE_LIMIT_PER_MINUTE of the replicas: high enough to refuse"
                        " nothing but on, so its database round trips are measured (0 = off)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--markdown", action="store_true", help="print the docs/performance.md table")
    args = p.parse_args(argv)
    from tests.support.postgres import binaries_missing

    missing = binaries_missing()
    if missing:
        log(f"skipped: PostgreSQL binaries not on PATH ({', '.join(missing)})")
        return 0
    result = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.markdown:
        print(markdown(result))
    return 1 if any(r["errors"] for r in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())

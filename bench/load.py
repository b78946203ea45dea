"""The load generator: N concurrent aiohttp clients on loopback, bounded by time and count.

Each client sends its next request as soon as its previous answer is read (closed loop). Every
answer is checked (status, and ``cached`` where it tells whether the models ran); a wrong answer
counts as an error, not as a latency. Requests started before the deadline are waited for, and
throughput is completed requests over the time from the first send to the last answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from bench.servers import machine_busy, process_cpu

#: ``next_request()`` -> (method, path, body or None, content type or None), or None when it has
#: no more requests to give (the client stops)
RequestFactory = Callable[[], tuple[str, str, bytes | None, str | None] | None]
#: ``check(status, body)`` -> None when the answer is right, else what is wrong
Check = Callable[[int, dict], str | None]


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    last: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return max(0.0, self.last - self.started)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "requests": self.requests, "errors": self.errors,
            "error_samples": self.error_samples[:5],
            "elapsed_s": round(self.elapsed_s, 3),
            "img_per_s": round(self.requests / self.elapsed_s, 3) if self.elapsed_s else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p90_ms": round(float(np.percentile(lat, 90)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "mean_ms": round(float(lat.mean()), 2),
            "max_ms": round(float(lat.max()), 2),
        }


async def _client(session: aiohttp.ClientSession, base: str, headers: dict,
                  next_request: RequestFactory, check: Check, deadline: float, budget,
                  out: LoadResult) -> None:
    while time.perf_counter() < deadline and next(budget, None) is not None:
        request = next_request()
        if request is None:
            break
        method, path, body, ctype = request
        hdrs = {**headers, "Content-Type": ctype} if ctype else headers
        t0 = time.perf_counter()
        try:
            async with session.request(method, base + path, data=body, headers=hdrs) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as e:
            problem = f"{type(e).__name__}: {e}"
        else:
            try:
                problem = check(status, json.loads(raw))
            except ValueError:
                problem = f"HTTP {status}: not JSON: {raw[:80]!r}"
        t1 = time.perf_counter()
        out.last = max(out.last, t1)
        if problem:
            out.errors += 1
            out.error_samples.append(problem)
        else:
            out.requests += 1
            out.latencies_ms.append((t1 - t0) * 1000.0)


async def run_load(base: str, headers: dict, next_request: RequestFactory, check: Check, *,
                   clients: int, duration_s: float, max_requests: int) -> LoadResult:
    out = LoadResult()
    budget = iter(range(max_requests))  # shared: at most max_requests in all
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        out.started = time.perf_counter()
        deadline = out.started + duration_s
        await asyncio.gather(*(_client(session, base, headers, next_request, check, deadline,
                                       budget, out) for _ in range(clients)))
    return out


async def measure(server, headers: dict, next_request: RequestFactory, check: Check, *,
                  clients: int, duration_s: float, max_requests: int, warmup: int) -> dict:
    """One scenario: a warm-up burst, then the measured load with CPU accounting around it."""
    if warmup:
        await run_load(server.url, headers, next_request, check, clients=clients,
                       duration_s=60.0, max_requests=warmup)
    batching0 = _batching(server)
    cpu0 = (process_cpu(server.proc.pid), time.process_time(), machine_busy())
    result = await run_load(server.url, headers, next_request, check, clients=clients,
                            duration_s=duration_s, max_requests=max_requests)
    cpu1 = (process_cpu(server.proc.pid), time.process_time(), machine_busy())
    batching1 = _batching(server)
    summary = {"clients": clients, **result.summary()}
    summary.update(cpu_shares(cpu0, cpu1, result))
    if batching0 and batching1:
        batches = batching1["batches_run"] - batching0["batches_run"]
        rows = batching1["rows_run"] - batching0["rows_run"]
        summary["batches"] = batches
        summary["rows_per_batch"] = round(rows / batches, 2) if batches else None
    return summary


def cpu_shares(cpu0, cpu1, result: LoadResult) -> dict:
    """Where the cores went during a scenario: server, load generator, everything else."""
    if None in cpu0 or None in cpu1 or not result.elapsed_s:
        return {}
    server, client, busy = (b - a for a, b in zip(cpu0, cpu1))
    capacity = result.elapsed_s * (os.cpu_count() or 1)
    n = max(1, result.requests + result.errors)
    return {
        "server_cpu_ms_per_req": round(server * 1000 / n, 2),
        "client_cpu_ms_per_req": round(client * 1000 / n, 2),
        "server_cpu_share": round(server / capacity, 3),
        "client_cpu_share": round(client / capacity, 3),
        "other_cpu_share": round(max(0.0, busy - server - client) / capacity, 3),
    }


def _batching(server) -> dict | None:
    try:
        return server.get_json("/health").get("batching")
    except OSError:
        return None


def cycle_requests(items: list) -> Callable:
    it = itertools.cycle(items)
    return lambda: next(it)

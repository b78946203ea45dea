"""Worker threads, one bounded pool per kind of blocking work.

Password hashing (scrypt, ~0.3 s and 128 MiB each) gets its own small pool with a bounded
queue: a flood of sign-ins waits there, or is refused at once when the queue is full, and never
holds the threads that render heatmaps, resolve host names or talk to the SMTP server.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from service.keys import POOLS, SETTINGS
from service.threads import named_pool


class PoolBusy(Exception):
    """More work is waiting for this pool than it accepts: try again shortly."""

    def __init__(self, name: str):
        super().__init__(f"the {name} pool is busy")
        self.name = name


class BoundedPool:
    """A thread pool that refuses work beyond ``workers + max_waiting`` jobs in flight."""

    def __init__(self, name: str, workers: int, max_waiting: int):
        self.name = name
        self.executor = named_pool(workers, name)
        self.limit = workers + max_waiting
        self.in_flight = 0

    async def run(self, fn, *args):
        if self.in_flight >= self.limit:
            raise PoolBusy(self.name)
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass
class Pools:
    passwords: BoundedPool
    heatmaps: BoundedPool
    dns: ThreadPoolExecutor
    mail: ThreadPoolExecutor

    @classmethod
    def create(cls, password_workers: int = 2, password_waiting: int = 16) -> Pools:
        return cls(passwords=BoundedPool("scrypt", password_workers, password_waiting),
                   heatmaps=BoundedPool("heatmap", 2, 64),
                   dns=named_pool(8, "dns"),
                   mail=named_pool(1, "smtp"))

    def shutdown(self) -> None:
        self.passwords.shutdown()
        self.heatmaps.shutdown()
        self.dns.shutdown(wait=True, cancel_futures=True)
        self.mail.shutdown(wait=True, cancel_futures=True)


async def pools_ctx(app: web.Application):
    """cleanup_ctx: the pools live as long as the app (first in, last out)."""
    s = app[SETTINGS]
    app[POOLS] = Pools.create(s.password_workers, s.password_queue)
    yield
    app[POOLS].shutdown()

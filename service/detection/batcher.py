"""Micro-batching: concurrent requests' views are gathered into one model run.

A request submits its views (rows of one input array); the batcher waits at most
``max_wait_ms`` for more while other requests are still being prepared, up to ``max_batch``
rows, then runs the models once off the event loop and hands each request its own rows back.
When nothing else is on its way the batch runs at once, so a lone request pays no wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np


@dataclass
class _Item:
    x: np.ndarray
    future: asyncio.Future
    need: np.ndarray | None = None  # (rows, members) bool: which model scores which row


class MicroBatcher:
    def __init__(self, run: Callable[..., list[np.ndarray]], executor: Executor,
                 max_batch: int = 16, max_wait_ms: float = 5.0):
        self.run = run
        self.executor = executor
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.preparing = 0  # requests on their way to submit()
        self.batches = 0
        self.rows = 0
        self._task: asyncio.Task | None = None
        self._held: _Item | None = None
        self._waiting: set[asyncio.Future] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for future in list(self._waiting):  # nobody will run them now: do not leave them hanging
            if not future.done():
                future.set_exception(RuntimeError("the detector stopped"))

    @contextlib.contextmanager
    def preparing_one(self):
        """Tell the batcher a request is being decoded, so a batch may wait for it."""
        self.preparing += 1
        try:
            yield
        finally:
            self.preparing -= 1

    async def submit(self, x: np.ndarray, need: np.ndarray | None = None) -> list[np.ndarray]:
        """The outputs of ``run`` for these rows. ``need`` ((rows, members) bool) says which
        model scores which row (default: every model every row); a batch that mixes requests
        with and without it is run as ``run(x, need)`` with the missing rows all True."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        await self.queue.put(_Item(x, future, need))
        return await future

    @staticmethod
    def _inputs(live: list[_Item]) -> tuple:
        x = np.concatenate([it.x for it in live]) if len(live) > 1 else live[0].x
        needs = [it.need for it in live]
        if all(nd is None for nd in needs):
            return (x,)
        width = next(nd.shape[1] for nd in needs if nd is not None)
        return x, np.concatenate([np.ones((len(it.x), width), bool) if it.need is None
                                  else it.need for it in live])

    async def _next(self, timeout: float | None = None) -> _Item:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        if timeout is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def _gather(self) -> list[_Item]:
        """One batch: at most ``max_batch`` rows, unless a single request alone has more."""
        loop = asyncio.get_running_loop()
        batch = [await self._next()]
        rows = len(batch[0].x)
        deadline = loop.time() + self.max_wait
        while rows < self.max_batch:
            if not self.queue.empty():
                item = self.queue.get_nowait()
            elif self.preparing == 0:
                break
            else:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await self._next(timeout)
                except TimeoutError:
                    break
            if rows + len(item.x) > self.max_batch:
                self._held = item  # it opens the next batch
                break
            batch.append(item)
            rows += len(item.x)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [it for it in batch if not it.future.done()]
            if not live:
                continue
            args = self._inputs(live)
            x = args[0]
            try:
                outputs = await loop.run_in_executor(self.executor, self.run, *args)
            except Exception as e:  # hand the failure to every waiting request
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            self.batches += 1
            self.rows += len(x)
            start = 0
            for it in live:
                end = start + len(it.x)
                if not it.future.done():
                    it.future.set_result([o[start:end] for o in outputs])
                start = end

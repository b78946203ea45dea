"""Jobs: long checks (videos, frame sequences) that answer 202 at once and run on their own.

A job is a row of the ``jobs`` table (status, progress, the check it produced or its error), so
any replica answers ``GET /v1/jobs/{id}``; it runs as an asyncio task in the process that
accepted it. At most ``max_running`` jobs run at once in a process and ``max_queued`` more wait;
beyond that a new job is refused (503 ``busy``) rather than queued without end. Cancelling marks
the row; the running task sees it at its next progress step (or at once, in its own process).
Progress is written at most every ``PROGRESS_EVERY_S`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from service.errors import ApiError
from service.store import Database, now

log = logging.getLogger("service.jobs")

STATUSES = ("queued", "running", "done", "failed", "cancelled")
PROGRESS_EVERY_S = 0.25
#: a running job whose progress has not moved for this long belongs to a stopped process
LOST_AFTER_S = 120.0


class JobCancelled(Exception):
    """The job's row says cancelled (a DELETE, possibly on another replica)."""


class JobFailed(Exception):
    """A job ends with this error code and message (bad input met while decoding, a limit)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Progress:
    """Handed to a job's work: ``await progress(done, total)``."""

    def __init__(self, jobs: JobService, job_id: str):
        self.jobs = jobs
        self.job_id = job_id
        self.done = 0
        self.total: int | None = None
        self._written = 0.0

    async def __call__(self, done: int, total: int | None = -1, *, force: bool = False) -> None:
        self.done = done
        if total != -1:
            self.total = total
        clock = time.monotonic()
        if not force and clock - self._written < PROGRESS_EVERY_S:
            return
        self._written = clock
        changed = await self.jobs.db.execute(
            "UPDATE jobs SET done = ?, total = ?, updated_at = ? WHERE id = ? AND status = 'running'",
            (self.done, self.total, now(), self.job_id))
        if not changed:
            raise JobCancelled()


class JobService:
    def __init__(self, db: Database, *, max_running: int, max_queued: int, timeout_s: float):
        self.db = db
        self.slots = asyncio.Semaphore(max(1, max_running))
        self.limit = max(1, max_running) + max(0, max_queued)
        self.timeout_s = timeout_s
        self.tasks: dict[str, asyncio.Task] = {}

    async def submit(self, user_id: str | None, kind: str, sha256: str,
                     work: Callable[[Progress], Awaitable[dict]], total: int | None = None) -> dict:
        """Queue ``work`` (it returns the stored check); the job's public view."""
        if len(self.tasks) >= self.limit:
            raise ApiError(503, "busy", "too many video checks are running or waiting; try again"
                           " shortly", retry_after_s=5)
        job_id = "job_" + uuid.uuid4().hex
        stamp = now()
        await self.db.execute(
            "INSERT INTO jobs (id, user_id, kind, sha256, status, done, total, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?)",
            (job_id, user_id, kind, sha256, total, stamp, stamp))
        view = await self.get(job_id)  # as accepted (the task may start at once)
        task = asyncio.get_running_loop().create_task(self._run(job_id, work))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))
        return view

    async def _run(self, job_id: str, work) -> None:
        try:
            async with self.slots:
                started = await self.db.execute(
                    "UPDATE jobs SET status = 'running', updated_at = ? WHERE id = ?"
                    " AND status = 'queued'", (now(), job_id))
                if not started:
                    return  # cancelled while queued
                progress = Progress(self, job_id)
                async with asyncio.timeout(self.timeout_s):
                    check = await work(progress)
                await self._finish(job_id, "done", progress, check_id=check["id"])
        except (JobCancelled, asyncio.CancelledError):
            await self._finish(job_id, "cancelled", None)
        except JobFailed as e:
            await self._finish(job_id, "failed", None, error={"code": e.code, "message": e.message})
        except TimeoutError:
            await self._finish(job_id, "failed", None, error={
                "code": "job_timeout", "message": f"the check took longer than {self.timeout_s:g} s"})
        except Exception:
            log.exception("job %s failed", job_id)
            await self._finish(job_id, "failed", None, error={
                "code": "internal_error", "message": "the service failed on this job"})

    async def _finish(self, job_id: str, status: str, progress: Progress | None, *,
                      check_id: str | None = None, error: dict | None = None) -> None:
        sets, params = "status = ?, updated_at = ?", [status, now()]
        if progress is not None:
            sets += ", done = ?, total = ?"
            params += [progress.done, progress.done]
        try:
            await asyncio.shield(self.db.execute(
                f"UPDATE jobs SET {sets}, check_id = ?, error = ? WHERE id = ?"
                " AND status IN ('queued', 'running')",
                (*params, check_id, json.dumps(error) if error else None, job_id)))
        except Exception:  # the database is closing (shutdown): the row stays as it was
            log.warning("job %s: its end (%s) could not be recorded", job_id, status)

    async def get(self, job_id: str) -> dict | None:
        row = await self.db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            return None
        if self._lost(row):
            await self._finish(job_id, "failed", None, error={
                "code": "job_lost", "message": "the service stopped while running this job:"
                " send the video again"})
            row = await self.db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _view(row)

    def _lost(self, row) -> bool:
        """A job no process runs any more (its process stopped): running without a progress
        write for ``LOST_AFTER_S``, or queued for longer than every job ahead could take."""
        if row["id"] in self.tasks or row["status"] not in ("queued", "running"):
            return False
        idle = now() - row["updated_at"]
        if row["status"] == "running":
            return idle > LOST_AFTER_S
        return idle > self.timeout_s * self.limit + LOST_AFTER_S

    async def cancel(self, job_id: str) -> bool:
        """True if it was cancelled now, False if it had already ended."""
        changed = await self.db.execute(
            "UPDATE jobs SET status = 'cancelled', updated_at = ? WHERE id = ?"
            " AND status IN ('queued', 'running')", (now(), job_id))
        task = self.tasks.get(job_id)
        if changed and task is not None:
            task.cancel()
        return bool(changed)

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _view(row) -> dict:
    return {
        "id": row["id"], "kind": row["kind"], "status": row["status"],
        "progress": {"done": row["done"], "total": row["total"]},
        "check_id": row["check_id"],
        "error": json.loads(row["error"]) if row["error"] else None,
        "created_at": row["created_at"], "updated_at": row["updated_at"],
        "user_id": row["user_id"],
    }

"""The background sender: announces new queue items, then sends what the outbox holds.

One pass every ``mail_poll_s``: due messages are claimed one by one and handed to SMTP in a
thread. When the server is unreachable the sender pauses with exponential backoff
(``mail_backoff_s`` doubling up to ``mail_backoff_max_s``) and tries again, for as long as it
takes; a message the server refuses is retried with the same backoff up to ``mail_max_attempts``
times (4xx) or marked failed at once (5xx). With ``smtp_host`` empty nothing is
sent, but the outbox is still written, so configuring SMTP later sends what was queued.
Every replica runs a sender; ``outbox.claim`` keeps them from sending one message twice (see
``outbox`` for the exactly-once rules on each backend).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from service.keys import DB, MAIL, POOLS, SETTINGS
from service.mail import alerts, outbox, smtp
from service.settings import Settings
from service.store import Database

log = logging.getLogger(__name__)


class MailSender:
    def __init__(self, db: Database, settings: Settings, executor=None):
        self.db = db
        self.executor = executor  # the app's SMTP thread (None: the loop's default pool)
        self.settings = settings
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.stopping = False
        self.sent = 0
        self.outage_failures = 0  # failed tries in a row because the server was unreachable
        self.paused_until = 0.0  # time.monotonic() before which no delivery is tried

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    async def start(self) -> None:
        recovered = await outbox.recover(self.db)
        if recovered:
            log.warning("mail: %d message(s) were being sent when the service stopped; sending"
                        " again (they may arrive twice)", recovered)
        self.task = asyncio.create_task(self.run(), name="mail-sender")

    async def stop(self) -> None:
        """Finish the message being sent (so it is not left ``sending``), then stop."""
        if self.task is None:
            return
        self.stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), self.settings.smtp_timeout_s + 5)
        except TimeoutError:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    def poke(self) -> None:
        """Run a pass now rather than at the next poll (after something was queued)."""
        self.wake.set()

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the sender alive through any bug or database hiccup
                log.exception("mail: sender pass failed")
            try:
                await asyncio.wait_for(self.wake.wait(), self.settings.mail_poll_s)
            except TimeoutError:
                pass
            self.wake.clear()

    async def run_once(self) -> int:
        """One pass; the number of messages sent."""
        s = self.settings
        await alerts.announce_new_items(self.db, s.public_url.rstrip("/"), s.mail_digest_s)
        if self.stopping or not self.enabled or time.monotonic() < self.paused_until:
            return 0
        sent = 0
        while not self.stopping:
            async with outbox.claim(self.db) as claim:
                if claim is None:
                    break
                msg = smtp.build_message(claim.row, s)
                try:
                    await asyncio.get_running_loop().run_in_executor(self.executor, smtp.deliver, s,
                                                                       msg)
                except Exception as e:  # every SMTP or network failure is retried or recorded
                    if await self.failed(claim, e) == "outage":
                        break  # the server is down: leave the other messages alone until it is back
                    continue
                await self.record_sent(claim)
            self.outage_failures = 0
            sent += 1
        self.sent += sent
        return sent

    async def record_sent(self, claim: outbox.Claim, tries: int = 5) -> None:
        """Mark a delivered message sent, trying again when the database is briefly unavailable
        (SQLite shared by several processes: busy): it must not be left ``sending``."""
        for attempt in range(tries):
            try:
                await claim.sent()
                return
            except Exception:
                if attempt == tries - 1 or claim.tx is not None:  # PostgreSQL: its claim rolls back
                    raise
                log.warning("mail: recording message #%s as sent failed; trying again",
                            claim.row["id"], exc_info=True)
                await asyncio.sleep(0.2 * 2 ** attempt)

    async def failed(self, claim: outbox.Claim, e: Exception) -> str:
        s = self.settings
        row = claim.row
        kind = smtp.classify(e)
        error = f"{type(e).__name__}: {e}"
        if kind == "outage":  # pause the sender; the message keeps its attempts
            self.outage_failures += 1
            delay = outbox.backoff_s(self.outage_failures, s.mail_backoff_s, s.mail_backoff_max_s)
            self.paused_until = time.monotonic() + delay
            await claim.failed(error, delay_s=delay, counted=False, permanent=False,
                               max_attempts=s.mail_max_attempts)
            log.warning("mail: SMTP %s:%s unavailable (%s); next try in %.0f s", s.smtp_host,
                        s.smtp_port, error, delay)
            return kind
        delay = outbox.backoff_s(row["attempts"] + 1, s.mail_backoff_s, s.mail_backoff_max_s)
        state = await claim.failed(error, delay_s=delay, counted=True,
                                   permanent=kind == "permanent", max_attempts=s.mail_max_attempts)
        log.warning("mail: message #%s to %s refused (%s, now %s): %s", row["id"],
                    row["recipient"], kind, state, error)
        return kind


async def mail_ctx(app: web.Application):
    """cleanup_ctx: the sender runs for the app's lifetime."""
    sender = MailSender(app[DB], app[SETTINGS], app[POOLS].mail)
    app[MAIL] = sender
    await sender.start()
    yield
    await sender.stop()

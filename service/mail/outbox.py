"""The outbox table: every email is a row first, sent later by the background sender.

A row goes ``pending`` -> ``sending`` (claimed, one transaction) -> ``sent`` (another), or back
to ``pending`` with a later ``next_attempt_at`` when SMTP fails, or to ``failed`` after a
permanent refusal or ``mail_max_attempts`` temporary refusals of that message (an outage of the
server is not the message's fault and never makes it fail). ``dedupe_key`` is unique, so the same event
never enqueues two messages.

Exactly once, with one window: if the process dies after the SMTP server accepted a message but
before the row is marked ``sent``, the message is sent again (at least once beats lost). The
message's ``Message-ID`` is the same both times, so mail systems that deduplicate by it will.

How a message is claimed (``claim``) depends on the backend:

- PostgreSQL (several replicas): the row is locked ``FOR UPDATE SKIP LOCKED`` in a transaction
  that stays open while SMTP runs and records the outcome, so each due message is in the hands
  of one replica at a time and the others skip it. If that replica dies, its connection closes,
  PostgreSQL rolls the claim back and another replica sends the message at once. Rows are never
  seen ``sending`` there.
- SQLite (one process): the row is marked ``sending`` in one transaction and its outcome written
  in another (the write lock is not held across SMTP); a row left ``sending`` by a process that
  died is put back to ``pending`` by ``recover`` at the next start.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from service.store import Connection, Database, now

MAX_ERROR = 500


async def enqueue(tx: Connection, *, kind: str, recipient: str, subject: str, body: str,
                  dedupe_key: str, user_id: str | None = None) -> bool:
    """Add a message (inside the caller's transaction); False if that key was already queued."""
    at = now()
    inserted = await tx.execute(
        "INSERT INTO outbox (kind, user_id, recipient, subject, body, dedupe_key,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (kind, user_id, recipient, subject, body, dedupe_key, at, at))
    return inserted == 1


async def recover(db: Database) -> int:
    """At start: rows a previous process left ``sending`` go back to ``pending``."""
    async with db.transaction() as tx:
        return await tx.execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE state = 'sending'",
            (now(),))


async def claim_next(db: Database):
    """SQLite: the oldest due message, marked ``sending`` (and its attempt counted) atomically."""
    async with db.transaction() as tx:
        row = await tx.fetchone(DUE + " ORDER BY next_attempt_at, id LIMIT 1", (now(),))
        if row is None:
            return None
        await tx.execute(
            "UPDATE outbox SET state = 'sending', claimed_at = ?, attempts = attempts + 1"
            " WHERE id = ? AND state = 'pending'", (now(), row["id"]))
    return row


async def mark_sent(db: Database, message_id: int) -> None:
    async with db.transaction() as tx:
        await _mark_sent(tx, message_id)


async def _mark_sent(tx: Connection, message_id: int) -> None:
    await tx.execute("UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL"
                     " WHERE id = ?", (now(), message_id))


class Claim:
    """A message being sent: ``row`` (as it was before this attempt), and how its try ends."""

    def __init__(self, db: Database, row, tx: Connection | None = None):
        self.db, self.row, self.tx = db, row, tx

    async def sent(self) -> None:
        if self.tx is not None:
            await _mark_sent(self.tx, self.row["id"])
        else:
            await mark_sent(self.db, self.row["id"])

    async def failed(self, error: str, **how) -> str:
        """``reschedule`` this message (same keywords); its new state."""
        if self.tx is not None:
            return await _reschedule(self.tx, self.row["id"], error, **how)
        return await reschedule(self.db, self.row["id"], error, **how)


DUE = "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"


@asynccontextmanager
async def claim(db: Database):
    """``async with claim(db) as c``: the oldest due message not claimed elsewhere, or None."""
    if await db.fetchone(DUE + " LIMIT 1", (now(),)) is None:
        yield None  # the common case, answered without a write or a lock
        return
    if db.dialect != "postgresql":
        row = await claim_next(db)
        yield None if row is None else Claim(db, row)
        return
    async with db.transaction() as tx:
        row = await tx.fetchone(DUE + " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                                (now(),))
        if row is None:
            yield None
            return
        await tx.execute("UPDATE outbox SET claimed_at = ?, attempts = attempts + 1 WHERE id = ?",
                         (now(), row["id"]))
        yield Claim(db, row, tx)


def backoff_s(failures: int, base: float, cap: float) -> float:
    """Delay after ``failures`` failed tries in a row: base, 2 base, 4 base, ... up to cap."""
    return min(cap, base * 2 ** max(0, failures - 1))


async def reschedule(db: Database, message_id: int, error: str, *, delay_s: float,
                     counted: bool, permanent: bool, max_attempts: int) -> str:
    """Record a failed try; the row's new state (``pending`` to retry, or ``failed``).

    ``counted=False`` (an outage, nothing wrong with this message) gives the attempt back, so
    an outage of any length never makes a message fail.
    """
    async with db.transaction() as tx:
        return await _reschedule(tx, message_id, error, delay_s=delay_s, counted=counted,
                                 permanent=permanent, max_attempts=max_attempts)


async def _reschedule(tx: Connection, message_id: int, error: str, *, delay_s: float,
                      counted: bool, permanent: bool, max_attempts: int) -> str:
    row = await tx.fetchone("SELECT attempts FROM outbox WHERE id = ?", (message_id,))
    attempts = row["attempts"] - (0 if counted else 1)
    state = "failed" if permanent or (counted and attempts >= max_attempts) else "pending"
    await tx.execute(
        "UPDATE outbox SET state = ?, attempts = ?, last_error = ?, next_attempt_at = ?"
        " WHERE id = ?", (state, attempts, error[:MAX_ERROR], now() + delay_s, message_id))
    return state


async def retry_failed(tx: Connection, message_id: int | None = None) -> int:
    """Give failed messages (all, or one) a fresh set of attempts. Inside a transaction."""
    sql = ("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?"
           " WHERE state = 'failed'")
    params: tuple = (now(),)
    if message_id is not None:
        sql += " AND id = ?"
        params += (message_id,)
    return await tx.execute(sql, params)


def public(row) -> dict:
    return {k: row[k] for k in ("id", "kind", "recipient", "subject", "state", "attempts",
                                "last_error", "created_at", "next_attempt_at", "sent_at")}


async def messages(conn: Connection, state: str | None, limit: int, offset: int
                   ) -> tuple[list[dict], int]:
    where, params = ("WHERE state = ?", (state,)) if state else ("", ())
    rows = await conn.fetchall(f"SELECT * FROM outbox {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                               (*params, limit, offset))
    total = await conn.fetchval(f"SELECT COUNT(*) FROM outbox {where}", params)
    return [public(r) for r in rows], total


async def counts(conn: Connection) -> dict:
    rows = await conn.fetchall("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
    return {"pending": 0, "sending": 0, "sent": 0, "failed": 0, **{r["state"]: r["n"] for r in rows}}

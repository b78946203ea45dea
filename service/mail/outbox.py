"""The outbox table: every email is a row first, sent later by the background sender.

A row goes ``pending`` -> ``sending`` (claimed, one transaction) -> ``sent`` (another), or back
to ``pending`` with a later ``next_attempt_at`` when SMTP fails, or to ``failed`` after a
permanent refusal or ``mail_max_attempts`` temporary refusals of that message (an outage of the
server is not the message's fault and never makes it fail). ``dedupe_key`` is unique, so the same event
never enqueues two messages.

Exactly once, with one window: if the process dies after the SMTP server accepted a message but
before the row is marked ``sent``, the row is still ``sending``; ``recover`` at the next start
puts it back to ``pending`` and it is sent again (at least once beats lost). The message's
``Message-ID`` is the same both times, so mail systems that deduplicate by it will.
"""

from __future__ import annotations

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
    """The oldest due message, marked ``sending`` (and its attempt counted) atomically."""
    due = "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
    if await db.fetchone(due + " LIMIT 1", (now(),)) is None:
        return None  # the common case, answered without taking the write lock
    async with db.transaction() as tx:
        row = await tx.fetchone(due + " ORDER BY next_attempt_at, id LIMIT 1", (now(),))
        if row is None:
            return None
        await tx.execute(
            "UPDATE outbox SET state = 'sending', claimed_at = ?, attempts = attempts + 1"
            " WHERE id = ? AND state = 'pending'", (now(), row["id"]))
    return row


async def mark_sent(db: Database, message_id: int) -> None:
    async with db.transaction() as tx:
        await tx.execute("UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL"
                         " WHERE id = ?", (now(), message_id))


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

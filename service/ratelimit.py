"""Token buckets kept in the database, so every replica draws from the same bucket.

A bucket (one row of ``rate_limits`` per key, such as a user id) holds up to ``capacity``
tokens and refills at ``per_minute / 60`` tokens a second; a request that costs more than what
is left waits. Each take is one short transaction that locks the bucket's row, so replicas
taking from one bucket at once are serialised by the database. Time is the wall clock of the
replica (replicas are expected to run NTP); a clock that goes back refills nothing.
"""

from __future__ import annotations

from service.store import Database, for_update, now

#: a full bucket is the same as no row: rows untouched this long past full are removed
PRUNE_EVERY = 1000


class RateLimiter:
    """Buckets of one kind: their keys start with ``prefix``, so kinds that share the table
    never prune or drain each other's buckets."""

    def __init__(self, db: Database | None, per_minute: float, burst: int | None = None,
                 prefix: str = ""):
        self.db = db
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute))
        self.calls = 0
        self.prefix = prefix

    async def take(self, key: str, cost: float = 1.0) -> float:
        """0 if allowed, else the seconds to wait before the next request is allowed.

        ``cost`` is in checks: a lookup by hash (no pixels, no model run) costs a fraction.
        """
        if self.rate <= 0:
            return 0.0
        key = self.prefix + key
        at = now()
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO rate_limits (key, tokens, updated_at) VALUES (?, ?, ?)"
                             " ON CONFLICT (key) DO NOTHING", (key, self.capacity, at))
            row = await tx.fetchone(f"SELECT tokens, updated_at FROM rate_limits WHERE key = ?"
                                    f"{for_update(tx)}", (key,))
            tokens = min(self.capacity, row["tokens"] + max(0.0, at - row["updated_at"]) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            await tx.execute("UPDATE rate_limits SET tokens = ?, updated_at = ? WHERE key = ?",
                             (tokens, max(at, row["updated_at"]), key))
        self.calls += 1
        if self.calls % PRUNE_EVERY == 0:
            await self.prune()
        return wait

    async def prune(self) -> int:
        """Remove buckets that have been full for a while (they mean the same as no row)."""
        full_after = self.capacity / self.rate
        async with self.db.transaction() as tx:
            return await tx.execute(
                "DELETE FROM rate_limits WHERE updated_at < ? AND substr(key, 1, ?) = ?",
                (now() - full_after - 60.0, len(self.prefix), self.prefix))


class FailureLock:
    """Consecutive failed sign-ins per (client address, email), shared by every replica.

    At ``max_failures`` in a row the pair is locked for ``lockout_s``; a success clears it.
    Keyed by address and email, a stranger elsewhere cannot lock the owner out, and an email
    without an account is treated exactly like one with an account. Rows live in
    ``rate_limits`` under their own prefix: ``tokens`` counts the failures and ``updated_at`` is
    the last one (a row idle for longer than the lockout is forgotten).
    """

    PREFIX = "signin-fail:"

    def __init__(self, db: Database | None, max_failures: int, lockout_s: float):
        self.db = db
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.calls = 0

    def _key(self, address: str, email: str) -> str:
        return f"{self.PREFIX}{address}|{email}"

    async def locked_for(self, address: str, email: str) -> float:
        """Seconds this pair stays locked (0 when it is not)."""
        if self.max_failures <= 0:
            return 0.0
        row = await self.db.fetchone("SELECT tokens, updated_at FROM rate_limits WHERE key = ?",
                                     (self._key(address, email),))
        if row is None or row["tokens"] < self.max_failures:
            return 0.0
        return max(0.0, row["updated_at"] + self.lockout_s - now())

    async def failed(self, address: str, email: str) -> bool:
        """Count a failure; True if the pair is locked now."""
        if self.max_failures <= 0:
            return False
        key, at = self._key(address, email), now()
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO rate_limits (key, tokens, updated_at) VALUES (?, 0, ?)"
                             " ON CONFLICT (key) DO NOTHING", (key, at))
            row = await tx.fetchone(f"SELECT tokens FROM rate_limits WHERE key = ?{for_update(tx)}",
                                    (key,))
            # A lock that has run out starts a new count.
            failures = 1 if row["tokens"] >= self.max_failures else int(row["tokens"]) + 1
            await tx.execute("UPDATE rate_limits SET tokens = ?, updated_at = ? WHERE key = ?",
                             (failures, at, key))
        self.calls += 1
        if self.calls % PRUNE_EVERY == 0:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "DELETE FROM rate_limits WHERE updated_at < ? AND substr(key, 1, ?) = ?",
                    (at - self.lockout_s - 60.0, len(self.PREFIX), self.PREFIX))
        return failures >= self.max_failures

    async def succeeded(self, address: str, email: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM rate_limits WHERE key = ?", (self._key(address, email),))


class WindowLimiter:
    """The checks' limit: at most ``per_minute`` checks' worth of cost in any 60 seconds.

    A sliding window, kept in the database so every replica counts against the same limit: each
    request allowed is one ``rate_events`` row (when, what it cost), and a request that would go
    over waits until enough of the oldest cost has left the window. (A token bucket refilling at
    per_minute/60 lets a steady client through nearly twice the limit within a minute.) Each take
    is one short transaction that locks the key's ``rate_limits`` row, so replicas taking for one
    key at once are serialised by the database. Same ``take`` as ``RateLimiter``.
    """

    WINDOW_S = 60.0
    EPSILON = 1e-9  # sums of fractional costs (lookups cost 0.1)

    def __init__(self, db: Database | None, per_minute: float, prefix: str = ""):
        self.db = db
        self.limit = float(per_minute)
        self.prefix = prefix
        self.calls = 0

    async def take(self, key: str, cost: float = 1.0, at: float | None = None) -> float:
        """0 if allowed (and counted), else the seconds to wait until it would be allowed.

        ``cost`` is in checks: a lookup by hash costs a fraction; a post costs 1 even when its
        result is already known.
        """
        if self.limit <= 0:
            return 0.0
        key = self.prefix + key
        at = now() if at is None else at
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO rate_limits (key, tokens, updated_at) VALUES (?, 0, ?)"
                             " ON CONFLICT (key) DO NOTHING", (key, at))
            await tx.fetchone(f"SELECT key FROM rate_limits WHERE key = ?{for_update(tx)}", (key,))
            await tx.execute("DELETE FROM rate_events WHERE key = ? AND at <= ?",
                             (key, at - self.WINDOW_S))
            events = await tx.fetchall("SELECT at, cost FROM rate_events WHERE key = ?"
                                       " ORDER BY at", (key,))
            used = sum(e["cost"] for e in events)
            wait = 0.0
            if used + cost <= self.limit + self.EPSILON:
                await tx.execute("INSERT INTO rate_events (key, at, cost) VALUES (?, ?, ?)",
                                 (key, at, cost))
                await tx.execute("UPDATE rate_limits SET updated_at = ? WHERE key = ?", (at, key))
            else:
                wait = self.WINDOW_S
                freed = 0.0
                for e in events:  # wait until enough of the oldest cost has left the window
                    freed += e["cost"]
                    if used - freed + cost <= self.limit + self.EPSILON:
                        wait = max(0.01, e["at"] + self.WINDOW_S - at)
                        break
        self.calls += 1
        if self.calls % PRUNE_EVERY == 0:
            await self.prune(at)
        return wait

    async def prune(self, at: float | None = None) -> int:
        """Remove what no longer counts: this kind's events older than the window, idle keys."""
        at = now() if at is None else at
        n = len(self.prefix)
        async with self.db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM rate_events WHERE at <= ? AND substr(key, 1, ?) = ?",
                (at - self.WINDOW_S, n, self.prefix))
            return removed + await tx.execute(
                "DELETE FROM rate_limits WHERE updated_at <= ? AND substr(key, 1, ?) = ?",
                (at - 2 * self.WINDOW_S, n, self.prefix))

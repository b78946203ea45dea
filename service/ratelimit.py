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
    def __init__(self, db: Database | None, per_minute: int, burst: int | None = None):
        self.db = db
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute))
        self.calls = 0

    async def take(self, key: str, cost: float = 1.0) -> float:
        """0 if allowed, else the seconds to wait before the next request is allowed.

        ``cost`` is in checks: a lookup by hash (no pixels, no model run) costs a fraction.
        """
        if self.rate <= 0:
            return 0.0
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
            return await tx.execute("DELETE FROM rate_limits WHERE updated_at < ?",
                                    (now() - full_after - 60.0,))

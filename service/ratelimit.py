"""Per-user token buckets (in memory: limits are per service process)."""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None):
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute))
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 if allowed, else the seconds to wait before the next request is allowed.

        ``cost`` is in checks: a lookup by hash (no pixels, no model run) costs a fraction.
        """
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self.buckets[key] = (tokens - cost, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

"""Which flagged items and imported hash-list entries an image is a near-duplicate of.

The index lives in memory, one per service process, and follows the tables: every lookup first
reads the ``flag_hashes`` and ``hash_list`` rows it has not loaded yet (inside the caller's
transaction, so a check sees the items that the checks before it created, on any replica).
Rows are read back from a little below the highest id loaded, as ids of concurrent PostgreSQL
transactions can become visible out of order.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.pdq.hashing import DEFAULT_MIN_QUALITY
from service.pdq.index import HashIndex
from service.store import Connection

#: PDQ's customary match threshold (ThreatExchange / Hasher-Matcher-Actioner): 31 of 256 bits
DEFAULT_MAX_DISTANCE = 31
#: a stricter one for an item's 95 % window hashes: a window matches a *shifted* copy, and
#: another photo taken a moment later (same pose, the person moved a little) is one too
DEFAULT_WINDOW_MAX_DISTANCE = 18
_LOOKBACK = 1000


@dataclass(frozen=True, order=True)
class Hit:
    distance: int
    kind: str  # "item" (a flagged item) | "list" (an imported hash-list entry)
    id: str


class _Follower:
    """Loads the rows of one table once each."""

    def __init__(self, sql: str):
        self.sql = sql
        self.loaded: set[int] = set()
        self.top = 0

    async def new_rows(self, conn: Connection) -> list:
        rows = await conn.fetchall(self.sql, (self.top - _LOOKBACK,))
        fresh = [r for r in rows if r["id"] not in self.loaded]
        self.loaded.update(r["id"] for r in fresh)
        if fresh:
            self.top = max(self.top, max(r["id"] for r in fresh))
        return fresh


class NearDuplicates:
    def __init__(self, max_distance: int = DEFAULT_MAX_DISTANCE,
                 min_quality: int = DEFAULT_MIN_QUALITY,
                 window_max_distance: int = DEFAULT_WINDOW_MAX_DISTANCE):
        self.max_distance = max_distance
        self.min_quality = min_quality
        self.window_max_distance = min(window_max_distance, max_distance)
        self.index = HashIndex()
        self._items = _Follower("SELECT id, flag_id, hash, is_window FROM flag_hashes"
                                " WHERE id > ? ORDER BY id")
        self._list = _Follower("SELECT id, hash FROM hash_list WHERE id > ? ORDER BY id")

    async def refresh(self, conn: Connection) -> None:
        rows = await self._items.new_rows(conn)
        self.index.add_many((r["hash"], ("item", r["flag_id"], r["is_window"])) for r in rows)
        rows = await self._list.new_rows(conn)
        self.index.add_many((r["hash"], ("list", str(r["id"]), 0)) for r in rows)

    def usable(self, pdq: dict | None) -> bool:
        return bool(pdq and pdq.get("hash") and (pdq.get("quality") or 0) >= self.min_quality)

    async def hits(self, conn: Connection, pdq: dict | None) -> list[Hit]:
        """Items and list entries within the threshold of the image's hashes, nearest first."""
        if not self.usable(pdq):
            return []
        await self.refresh(conn)
        best: dict[tuple[str, str], int] = {}
        for h in (pdq["hash"], pdq.get("trimmed")):
            if not h:
                continue
            for distance, (kind, id_, window) in self.index.search(h, self.max_distance):
                if window and distance > self.window_max_distance:
                    continue
                if distance < best.get((kind, id_), 257):
                    best[(kind, id_)] = distance
        return sorted(Hit(d, kind, id_) for (kind, id_), d in best.items())

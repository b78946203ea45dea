"""What the near-duplicate index's refresh costs a check: ``python -m bench.near_refresh``.

Every check's transaction first loads the ``flag_hashes`` and ``hash_list`` rows the index does
not hold yet (`service.moderation.near`). On a real SQLite store holding ``--items`` flagged
items (11 hashes each, as an image's full, trimmed and nine window hashes), it times, inside a
transaction as a check runs it:

* the refresh when nothing was added (most checks);
* the read the index made before 2026-11-30 on every check: the last 1,000 rows again (its
  lookback for ids that PostgreSQL makes visible out of order), and the filtering of them;
* an empty transaction, for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from service.moderation.near import NearDuplicates
from service.settings import Settings
from service.store import now, open_database

HASHES_PER_ITEM = 11


async def _fill(db, items: int) -> None:
    async with db.transaction() as tx:
        for _ in range(items):
            flag_id, at = "flg_" + secrets.token_hex(10), now()
            await tx.execute(
                "INSERT INTO flags (id, sha256, reason, score, detector_verdict, queued_at,"
                " created_at, last_seen_at) VALUES (?, ?, 'detectors', 0.9, 'fake', ?, ?, ?)",
                (flag_id, secrets.token_hex(32), at, at, at))
            for k in range(HASHES_PER_ITEM):
                await tx.execute("INSERT INTO flag_hashes (flag_id, hash, is_window) VALUES"
                                 " (?, ?, ?)", (flag_id, secrets.token_hex(32), int(k > 1)))


async def _per_call(db, fn, n: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of ``fn(tx)`` in its own transaction."""
    c, t = time.process_time(), time.perf_counter()
    for _ in range(n):
        async with db.transaction() as tx:
            await fn(tx)
    return (1e3 * (time.process_time() - c) / n, 1e3 * (time.perf_counter() - t) / n)


async def main(items: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = await open_database(Settings(data_dir=Path(d)))
        await _fill(db, items)
        near = NearDuplicates()
        async with db.transaction() as tx:
            await near.refresh(tx)
        loaded = set(near._items.loaded)
        top = max(loaded)

        async def before(tx) -> None:  # the earlier refresh: re-read the lookback, filter
            rows = await tx.fetchall("SELECT id, flag_id, hash, is_window FROM flag_hashes"
                                     " WHERE id > ? ORDER BY id", (top - 1000,))
            [r for r in rows if r["id"] not in loaded]
            await tx.fetchall("SELECT id, hash, windows FROM hash_list WHERE id > ?"
                              " ORDER BY id", (0,))

        async def nothing(tx) -> None:
            pass

        print(f"{items} flagged items, {items * HASHES_PER_ITEM} flag_hashes rows on SQLite;"
              f" {n} calls each, one transaction per call")
        for name, fn in (("refresh, nothing new (now)", near.refresh),
                         ("re-read of the last 1,000 rows (before)", before),
                         ("empty transaction", nothing)):
            cpu, wall = await _per_call(db, fn, n)
            print(f"  {name:<42} CPU {cpu:6.3f} ms  wall {wall:6.3f} ms")
        await db.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--calls", type=int, default=300)
    a = ap.parse_args()
    asyncio.run(main(a.items, a.calls))

"""Copy a SQLite database into an empty PostgreSQL database (moving a single-process install to
replicas): ``python -m service copy-db --to postgresql://...``.

Both databases are first brought to the current schema (the same numbered migrations), then
every table is copied in the order the migrations created it (so rows referenced by foreign keys
come first), with PostgreSQL's binary COPY. Auto-numbered ids keep their values and the
sequences continue after the largest. Mail that the stopped process left ``sending`` becomes
``pending`` again (``outbox.recover`` would do the same at its next start). The target must be
empty: nothing is merged or overwritten. Stop the service before copying.
"""

from __future__ import annotations

from pathlib import Path

from service.store.postgres import PostgresDatabase
from service.store.sqlite import SqliteDatabase

BATCH = 2000


class CopyError(Exception):
    pass


async def tables(source: SqliteDatabase) -> list[str]:
    rows = await source.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'"
                                 " AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
    return [r["name"] for r in rows]


async def copy_sqlite_to_postgres(sqlite_path: Path, url: str, log=print) -> dict[str, int]:
    """Copy everything; the number of rows per table (verified on both sides)."""
    if not Path(sqlite_path).exists():
        raise CopyError(f"no SQLite database at {sqlite_path}")
    source = await SqliteDatabase.open(sqlite_path)
    try:
        target = await PostgresDatabase.open(url, min_size=1, max_size=2)
        try:
            return await _copy(source, target, log)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(source: SqliteDatabase, target: PostgresDatabase, log) -> dict[str, int]:
    names = await tables(source)
    for name in names:
        if await target.fetchval(f"SELECT 1 FROM {name} LIMIT 1") is not None:
            raise CopyError(f"the target is not empty (table {name} has rows): copy into a new"
                            " database")
    copied: dict[str, int] = {}
    async with target.pool.acquire() as conn, conn.transaction():
        for name in names:
            columns = [r["name"] for r in await source.fetchall(f"PRAGMA table_info({name})")]
            wanted = {r["column_name"] for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", name)}
            if set(columns) != wanted:
                raise CopyError(f"table {name}: columns differ ({sorted(set(columns) ^ wanted)})")
            count, last = 0, None
            while True:  # in pages by rowid, so a large table is never held in memory at once
                where = "" if last is None else f" WHERE rowid > {last}"
                rows = await source.fetchall(
                    f"SELECT rowid AS _rowid, * FROM {name}{where} ORDER BY rowid LIMIT {BATCH}")
                if not rows:
                    break
                records = [tuple(_value(name, c, r[c]) for c in columns) for r in rows]
                await conn.copy_records_to_table(name, records=records, columns=columns)
                count += len(rows)
                last = rows[-1]["_rowid"]
            serial = await conn.fetchval("SELECT pg_get_serial_sequence($1, 'id')", name) \
                if "id" in columns else None
            if serial:
                await conn.execute(f"SELECT setval('{serial}', COALESCE((SELECT MAX(id) FROM {name}),"
                                   " 0) + 1, false)")
            copied[name] = count
            log(f"{name}: {count} rows")
    for name, count in copied.items():
        there = await target.fetchval(f"SELECT COUNT(*) FROM {name}")
        if there != count:
            raise CopyError(f"table {name}: {count} rows read, {there} in the target")
    return copied


def _value(table: str, column: str, value):
    if table == "outbox" and column == "state" and value == "sending":
        return "pending"
    return value

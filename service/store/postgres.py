"""PostgreSQL through asyncpg: a pool of connections, one per transaction.

SQL arrives with ``?`` placeholders (the store modules are written once for both backends) and is
rewritten here to ``$1, $2, ...``. Migrations run under a PostgreSQL advisory lock, so replicas
starting together apply each one once; the ``schema_version`` table records them.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import lru_cache

import asyncpg

from service.store import BadValue, Duplicate, now
from service.store.migrations import statements_for, target_version

log = logging.getLogger(__name__)

#: ``pg_advisory_lock`` key held while migrating (any constant; "realchk" in ASCII)
MIGRATION_LOCK = 0x7265616C63686B


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` -> ``$1, $2, ...``, leaving quoted text and identifiers alone."""
    out, n, quote = [], 0, None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def affected(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


#: values PostgreSQL cannot store (text with NUL, numbers out of range): the caller's input
_BAD_VALUE = (asyncpg.DataError, asyncpg.exceptions.UntranslatableCharacterError,
              asyncpg.exceptions.CharacterNotInRepertoireError, OverflowError)


class _Conn:
    """The query methods over one asyncpg connection (a transaction's) or the pool."""

    dialect = "postgresql"

    def __init__(self, target):
        self.target = target

    async def _call(self, method, sql: str, params):
        try:
            return await method(numbered(sql), *params)
        except _BAD_VALUE as e:
            raise BadValue(str(e)) from e
        except asyncpg.UniqueViolationError as e:
            raise Duplicate(str(e)) from e

    async def execute(self, sql: str, params=()) -> int:
        return affected(await self._call(self.target.execute, sql, params))

    async def fetchone(self, sql: str, params=()):
        return await self._call(self.target.fetchrow, sql, params)

    async def fetchall(self, sql: str, params=()) -> list:
        return await self._call(self.target.fetch, sql, params)

    async def fetchval(self, sql: str, params=()):
        return await self._call(self.target.fetchval, sql, params)


class PostgresDatabase(_Conn):
    def __init__(self, pool: asyncpg.Pool):
        super().__init__(pool)
        self.pool = pool

    @classmethod
    async def open(cls, url: str, min_size: int = 1, max_size: int = 10) -> "PostgresDatabase":
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        db = cls(pool)
        try:
            await db.migrate()
        except BaseException:
            await pool.close()
            raise
        return db

    async def migrate(self) -> int:
        """Apply the migrations the database lacks, holding the advisory lock; how many."""
        applied = 0
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                                   " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
                version = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                if version > target_version():
                    log.warning("the database has schema version %d, newer than this code's %d",
                                version, target_version())
                for number in range(version + 1, target_version() + 1):
                    async with conn.transaction():
                        for sql in statements_for(number, self.dialect):
                            await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_version (version, applied_at)"
                                           " VALUES ($1, $2)", number, now())
                    applied += 1
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        return applied

    @asynccontextmanager
    async def transaction(self):
        """``async with db.transaction() as tx``: one pooled connection, BEGIN ... COMMIT."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield _Conn(conn)

    async def close(self) -> None:
        await self.pool.close()

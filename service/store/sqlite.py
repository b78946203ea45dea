"""SQLite through aiosqlite: one connection in WAL mode, writes serialised by a lock.

The connection is shared by every request of the process, so ``transaction`` holds this
database's lock from BEGIN IMMEDIATE to COMMIT: one coroutine's statements never land in
another's open transaction. Other processes on the same file are kept apart by SQLite's own
write lock (``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from service.store import BadValue, Duplicate
from service.store.migrations import statements_for, target_version


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path):
        self.conn = conn
        self.path = path
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> "SqliteDatabase":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path)
        try:
            # The busy wait first; switching a new file to WAL needs the file to itself, and
            # SQLite answers "locked" at once (no busy wait) while another process opens it too.
            for pragma in ("busy_timeout=30000", "journal_mode=WAL", "synchronous=FULL",
                           "foreign_keys=ON"):
                await _when_unlocked(conn.execute, "PRAGMA " + pragma)
            await db.migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def migrate(self) -> int:
        """Apply the migrations this file lacks (``PRAGMA user_version`` counts them); how many."""
        version = await self.fetchval("PRAGMA user_version")
        applied = 0
        for number in range(version + 1, target_version() + 1):
            async with self.transaction():  # BEGIN IMMEDIATE: one process migrates at a time
                if await self.fetchval("PRAGMA user_version") >= number:
                    continue  # another process got there first
                for sql in statements_for(number, self.dialect):
                    await self.conn.execute(sql)
                await self.conn.execute(f"PRAGMA user_version={number}")
            applied += 1
        return applied

    async def _statement(self, read, sql: str, params):
        """One statement, run, read and closed by aiosqlite's thread in a single hand-over (its
        ``execute`` + ``fetchone`` + cursor ``close`` are three, each a wake-up of both threads:
        a check runs a few dozen statements). Text with a NUL character is refused as
        PostgreSQL refuses it (SQLite would store it): both backends answer the same."""
        if any(isinstance(p, str) and "\x00" in p for p in params):
            raise BadValue("text with a NUL character (\\u0000)")
        try:
            return await self.conn._execute(_run, self.conn._conn, read, sql, params)
        except OverflowError as e:
            raise BadValue(str(e)) from e
        except sqlite3.IntegrityError as e:
            if str(e).startswith("UNIQUE constraint failed"):
                raise Duplicate(str(e)) from e
            raise

    async def execute(self, sql: str, params=()) -> int:
        return await self._statement(_rowcount, sql, params)

    async def fetchone(self, sql: str, params=()):
        return await self._statement(sqlite3.Cursor.fetchone, sql, params)

    async def fetchall(self, sql: str, params=()) -> list:
        return await self._statement(sqlite3.Cursor.fetchall, sql, params)

    async def fetchval(self, sql: str, params=()):
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    @asynccontextmanager
    async def transaction(self):
        """``async with db.transaction() as tx``: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        async with self.lock:
            await self._begin()
            try:
                yield self
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE. SQLite answers "locked" at once, without its busy wait, when this
        connection's read snapshot is older than another connection's write (another process on
        the same file): such a start is tried again after a short pause."""
        await _when_unlocked(self.conn.execute, "BEGIN IMMEDIATE")

    async def close(self) -> None:
        await self.conn.close()


def _rowcount(cur: sqlite3.Cursor) -> int:
    return cur.rowcount


def _run(conn: sqlite3.Connection, read, sql: str, params):
    """In aiosqlite's thread: execute ``sql``, ``read(cursor)``, close the cursor."""
    cur = conn.execute(sql, params)
    try:
        return read(cur)
    finally:
        cur.close()


async def _when_unlocked(start, *args, tries: int = 100):
    """``await start(*args)``, started again after a short pause while SQLite answers "database is
    locked" without waiting (for up to ~18 s in all): statements that begin by taking a lock."""
    for attempt in range(tries):
        try:
            return await start(*args)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == tries - 1:
                raise
            await asyncio.sleep(0.02 * min(attempt + 1, 10))

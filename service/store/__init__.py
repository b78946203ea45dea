"""The database behind every store module: SQLite (embedded default) or PostgreSQL.

Store modules (``checks.store``, ``moderation.queue``, ``accounts``, ``audit``, ``faq``,
``mail.outbox``) take a connection and run their SQL through the small interface below; the
handlers never hold SQL. SQL is written once, with ``?`` placeholders, in the subset both
dialects share (``ON CONFLICT``, ``RETURNING``); the PostgreSQL backend numbers the placeholders.

Interface (both backends, and the handle a transaction yields)::

    await conn.execute(sql, params) -> rows affected
    await conn.fetchone(sql, params) -> row (by name and by position) | None
    await conn.fetchall(sql, params) -> [row]
    await conn.fetchval(sql, params) -> the first column of the first row | None
    async with db.transaction() as tx: ...   # commit on success, rollback on error
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class Connection(Protocol):
    dialect: str

    async def execute(self, sql: str, params: tuple | list = ()) -> int: ...
    async def fetchone(self, sql: str, params: tuple | list = ()) -> Any: ...
    async def fetchall(self, sql: str, params: tuple | list = ()) -> list: ...
    async def fetchval(self, sql: str, params: tuple | list = ()) -> Any: ...


class Database(Connection, Protocol):
    def transaction(self): ...
    async def close(self) -> None: ...


class BadValue(ValueError):
    """A value the database cannot hold (text with a NUL character, an integer out of range):
    the caller's input is wrong; the edge answers 400."""


class Duplicate(Exception):
    """A write broke a unique constraint: a row with that key exists (on PostgreSQL often one
    another transaction committed since this one looked). The transaction is to be rolled back;
    the store module that wrote says what it means (e.g. 409 ``email_taken``); where none does,
    the edge answers 409 ``conflict``, as it answers ``BadValue`` with 400."""


def now() -> float:
    return time.time()


def in_list(values) -> tuple[str, tuple]:
    """``(?, ?, ?)`` and its parameters, for ``x IN ...``; an empty list matches nothing."""
    values = tuple(values)
    if not values:
        return "(NULL)", ()
    return "(" + ", ".join("?" * len(values)) + ")", values


def chunks(values, size: int = 500):
    """``values`` in lists of at most ``size`` (bound parameters per statement are limited)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


async def open_database(settings) -> Database:
    """The database the settings name (``database_url``), migrated to the current schema."""
    url = settings.database_url
    if url.startswith(("postgresql://", "postgres://")):
        from service.store.postgres import PostgresDatabase

        return await PostgresDatabase.open(url, min_size=settings.database_pool_min,
                                           max_size=settings.database_pool_max)
    from service.store.sqlite import SqliteDatabase

    return await SqliteDatabase.open(settings.db_path)


def for_update(conn: Connection) -> str:
    """`` FOR UPDATE`` on PostgreSQL (lock the rows read until the transaction ends); nothing on
    SQLite, where a write transaction (BEGIN IMMEDIATE) already holds the whole database."""
    return " FOR UPDATE" if conn.dialect == "postgresql" else ""

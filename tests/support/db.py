"""Reading and changing a test service's rows from outside it, on either backend (blocking)."""

from __future__ import annotations

import sqlite3

from service.settings import Settings
from service.store.postgres import numbered
from tests.support.postgres import run_async


def query(settings: Settings, sql: str, params=()) -> list[dict]:
    if not settings.database_url.startswith("postgres"):
        with sqlite3.connect(settings.db_path) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, params).fetchall()]
    return run_async(_pg(settings.database_url, "fetch", sql, params))


def execute(settings: Settings, sql: str, params=()) -> None:
    if not settings.database_url.startswith("postgres"):
        with sqlite3.connect(settings.db_path) as con:
            con.execute(sql, params)
        return
    run_async(_pg(settings.database_url, "execute", sql, params))


async def _pg(url: str, method: str, sql: str, params):
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        result = await getattr(conn, method)(numbered(sql), *params)
        return [dict(r) for r in result] if method == "fetch" else result
    finally:
        await conn.close()

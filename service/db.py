"""SQLite storage (aiosqlite) in WAL mode, with the schema applied as numbered migrations.

Each migration is a list of statements; ``PRAGMA user_version`` records how many have run, so a
database written by an older version is upgraded in place and nothing is ever dropped.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from pathlib import Path

import aiosqlite

MIGRATIONS: list[list[str]] = [
    # 1: users, scored images, checks
    [
        """CREATE TABLE users (
            id TEXT PRIMARY KEY,
            email TEXT UNIQUE,
            role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'moderator', 'admin')),
            disabled INTEGER NOT NULL DEFAULT 0,
            email_alerts INTEGER NOT NULL DEFAULT 0,
            password_hash TEXT,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            last_seen_at REAL
        )""",
        """CREATE TABLE images (
            sha256 TEXT PRIMARY KEY,
            models_version TEXT NOT NULL,
            result TEXT NOT NULL,
            thumbnail BLOB,
            cams BLOB,
            width INTEGER,
            height INTEGER,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE checks (
            id TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            user_id TEXT,
            verdict TEXT NOT NULL,
            score REAL NOT NULL,
            result TEXT NOT NULL,
            page_url TEXT,
            source_url TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX checks_sha256 ON checks (sha256)",
        "CREATE INDEX checks_user ON checks (user_id, created_at)",
    ],
    # 2: moderation (flagged items, reports, their history), audit trail, mail outbox, FAQ
    [
        "ALTER TABLE users ADD COLUMN queue_alerts INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE users ADD COLUMN deleted_at REAL",
        """CREATE TABLE flags (
            id TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'open'
                CHECK (state IN ('open', 'confirmed_fake', 'real', 'dismissed')),
            reason TEXT NOT NULL,
            score REAL,
            detector_verdict TEXT,
            override_verdict TEXT CHECK (override_verdict IN ('fake', 'real')),
            decided_by TEXT,
            decided_role TEXT,
            decided_at REAL,
            decision_note TEXT,
            version INTEGER NOT NULL DEFAULT 1,
            queued_at REAL NOT NULL,
            announced_at REAL,
            created_at REAL NOT NULL,
            last_seen_at REAL NOT NULL
        )""",
        "CREATE INDEX flags_state_score ON flags (state, score)",
        "CREATE INDEX flags_state_seen ON flags (state, last_seen_at)",
        "CREATE INDEX flags_unannounced ON flags (queued_at) WHERE announced_at IS NULL",
        """CREATE TABLE flag_reports (
            id TEXT PRIMARY KEY,
            flag_id TEXT NOT NULL REFERENCES flags (id) ON DELETE CASCADE,
            check_id TEXT,
            user_id TEXT NOT NULL,
            note TEXT,
            page_url TEXT,
            created_at REAL NOT NULL,
            notified_version INTEGER,
            UNIQUE (flag_id, user_id)
        )""",
        "CREATE INDEX flag_reports_user ON flag_reports (user_id)",
        """CREATE TABLE flag_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            flag_id TEXT NOT NULL REFERENCES flags (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            actor TEXT,
            kind TEXT NOT NULL,
            detail TEXT
        )""",
        "CREATE INDEX flag_events_flag ON flag_events (flag_id, id)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT,
            actor_email TEXT,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT,
            ip TEXT
        )""",
        "CREATE INDEX audit_action ON audit (action, id)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            user_id TEXT,
            recipient TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            dedupe_key TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_error TEXT,
            created_at REAL NOT NULL,
            claimed_at REAL,
            sent_at REAL
        )""",
        "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",
        """CREATE TABLE faq (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            position INTEGER NOT NULL DEFAULT 0,
            published INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ],
]


async def connect(path: Path) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = aiosqlite.Row
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute("PRAGMA busy_timeout=5000")
    await migrate(db)
    return db


async def migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        (version,) = await cur.fetchone()
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        await db.execute("BEGIN IMMEDIATE")
        try:
            for sql in statements:
                await db.execute(sql)
            await db.execute(f"PRAGMA user_version={number}")
            await db.execute("COMMIT")
        except Exception:
            await db.execute("ROLLBACK")
            raise


_locks: "weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock]" = weakref.WeakKeyDictionary()


class transaction:
    """``async with transaction(db):`` — BEGIN IMMEDIATE … COMMIT, ROLLBACK on error.

    Every write goes through this: the connection is shared by all requests, so a lock keeps
    one coroutine's statements out of another's open transaction.
    """

    def __init__(self, db: aiosqlite.Connection):
        self.db = db
        self.lock = _locks.setdefault(db, asyncio.Lock())

    async def __aenter__(self):
        await self.lock.acquire()
        try:
            await self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    async def __aexit__(self, exc_type, exc, tb):
        try:
            await self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
        return False


async def fetchone(db: aiosqlite.Connection, sql: str, params=()) -> aiosqlite.Row | None:
    async with db.execute(sql, params) as cur:
        return await cur.fetchone()


async def fetchall(db: aiosqlite.Connection, sql: str, params=()) -> list[aiosqlite.Row]:
    async with db.execute(sql, params) as cur:
        return list(await cur.fetchall())


def now() -> float:
    return time.time()

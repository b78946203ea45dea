"""Accounts with a password, made the way a person makes one: ask to register, take the code
from the confirmation mail in the service's outbox, confirm it with the password."""

from __future__ import annotations

import re

from service.keys import DB

PASSWORD = "correct horse battery"
CODE_RE = re.compile(r"#confirm=([A-Za-z0-9_-]+)")


async def ask_to_register(client, email="ann@example.com", password=PASSWORD):
    return await client.post("/v1/auth/register", json={"email": email, "password": password})


async def confirmation_code(app, email: str) -> str | None:
    """The code of the newest confirmation mail queued for ``email`` (None if there is none)."""
    row = await app[DB].fetchone(
        "SELECT body FROM outbox WHERE kind = 'confirm_registration' AND recipient = ?"
        " ORDER BY id DESC LIMIT 1", (email.strip().lower(),))
    match = CODE_RE.search(row["body"]) if row else None
    return match.group(1) if match else None


async def confirm(client, code: str, password=PASSWORD):
    return await client.post("/v1/auth/confirm", json={"code": code, "password": password})


async def register(client, email="ann@example.com", password=PASSWORD):
    """Register and confirm: the confirmation's answer (201 and a session when it worked)."""
    asked = await ask_to_register(client, email, password)
    assert asked.status == 202, await asked.text()
    code = await confirmation_code(client.app, email)
    assert code, f"no confirmation mail for {email}"
    return await confirm(client, code, password)


async def login(client, email="ann@example.com", password=PASSWORD):
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


def outbox_confirmation_code(db_path, email: str) -> str | None:
    """The same, read from a running service's SQLite file (browser tests of a live service)."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)) as conn:
        row = conn.execute(
            "SELECT body FROM outbox WHERE kind = 'confirm_registration' AND recipient = ?"
            " ORDER BY id DESC LIMIT 1", (email.strip().lower(),)).fetchone()
    match = CODE_RE.search(row[0]) if row else None
    return match.group(1) if match else None

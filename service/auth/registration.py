"""Registering with email and password, in two steps, so that registering tells nobody which
addresses have an account.

1. ``request``: whatever the address, the caller gets the same answer. An address without an
   account gets a registration (its password hash, a random code) and a mail with a link holding
   the code; an address with an account gets a mail telling its owner that someone tried (at
   most one an hour), and nothing about the account changes.
2. ``confirm``: the code from the mail and the password chosen in step 1 create the account.
   Asking for the password too means that the owner of an address who opens a link from a
   registration a stranger started (with the stranger's password) cannot confirm it.

An account exists only once confirmed: until then signing in answers like an unknown address.
Accounts made by ``create-admin`` (the operator) or first seen with an external issuer's token are
confirmed by their creation.
"""

from __future__ import annotations

import hashlib
import secrets

from service import accounts
from service.mail import compose
from service.mail.outbox import enqueue
from service.store import Connection, now

#: how long a confirmation code is valid
CODE_TTL_S = 24 * 3600
#: registrations of one address waiting at once; beyond that no more mail is sent to it
MAX_PENDING = 5
#: at most one "someone tried to register" mail per account in this many seconds
NOTICE_EVERY_S = 3600
CODE_MAX_LENGTH = 200


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def link(base_url: str, code: str) -> str:
    """The page that finishes a registration (the code in the fragment: never sent to a server
    or a referrer by the browser)."""
    return f"{base_url}/signin#confirm={code}"


async def request(tx: Connection, email: str, password_hash: str, base_url: str) -> str | None:
    """Step 1 (inside a transaction): the mail to ``email``. The new code if a confirmation was
    queued (None when the address has an account or too many registrations are waiting)."""
    at = now()
    await tx.execute("DELETE FROM registrations WHERE expires_at <= ?", (at,))
    owner = await accounts.by_email(tx, email)
    if owner is not None:
        # at most one notice an hour: a sliding hour (the key's clock-hour bucket alone let two
        # attempts seconds apart, on either side of the hour, both notify)
        if await tx.fetchval("SELECT COUNT(*) FROM outbox WHERE kind = 'register_attempt'"
                             " AND user_id = ? AND created_at > ?",
                             (owner["id"], at - NOTICE_EVERY_S)):
            return None
        subject, body = compose.registration_attempt(base_url)
        await enqueue(tx, kind="register_attempt", recipient=email, subject=subject, body=body,
                      dedupe_key=f"register-attempt:{owner['id']}:{int(at // NOTICE_EVERY_S)}",
                      user_id=owner["id"])
        return None
    if await tx.fetchval("SELECT COUNT(*) FROM registrations WHERE email = ?",
                         (email,)) >= MAX_PENDING:
        return None
    code = secrets.token_urlsafe(24)
    digest = code_hash(code)
    await tx.execute("INSERT INTO registrations (code_hash, email, password_hash, created_at,"
                     " expires_at) VALUES (?, ?, ?, ?, ?)",
                     (digest, email, password_hash, at, at + CODE_TTL_S))
    subject, body = compose.confirm_registration(link(base_url, code), code, CODE_TTL_S // 3600)
    await enqueue(tx, kind="confirm_registration", recipient=email, subject=subject, body=body,
                  dedupe_key=f"register:{digest}")
    return code


async def pending(conn: Connection, code: str):
    """The registration this code confirms (row: email, password_hash), or None (unknown,
    expired or used)."""
    return await conn.fetchone(
        "SELECT * FROM registrations WHERE code_hash = ? AND expires_at > ?",
        (code_hash(code), now()))


async def confirm(tx: Connection, registration) -> str | None:
    """Step 2 (inside a transaction, the password already checked): the new account's id, or
    None if this registration was used meanwhile. Every registration of the address ends;
    409 ``email_taken`` if the address got an account another way meanwhile."""
    taken = await tx.execute("DELETE FROM registrations WHERE code_hash = ?",
                             (registration["code_hash"],))
    if not taken:
        return None
    await tx.execute("DELETE FROM registrations WHERE email = ?", (registration["email"],))
    return await accounts.create(tx, registration["email"], registration["password_hash"])

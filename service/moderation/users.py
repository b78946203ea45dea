"""Accounts: creating them, what admins may change, and deleting one with its data.

A deleted account keeps a tombstone row (its id, ``disabled`` and ``deleted_at``, nothing else):
tokens issued before the deletion name that id, and the tombstone makes them answer 403 instead
of creating the user again on first sight.
"""

from __future__ import annotations

import json
import uuid

import aiosqlite

from service import db as dbm
from service.auth.tokens import ROLES
from service.errors import ApiError, not_found

LIVE = "deleted_at IS NULL"


def public(row) -> dict:
    keys = row.keys()
    out = {"id": row["id"], "email": row["email"], "role": row["role"],
           "disabled": bool(row["disabled"]), "email_alerts": bool(row["email_alerts"]),
           "queue_alerts": bool(row["queue_alerts"]), "has_password": bool(row["password_hash"]),
           "created_at": row["created_at"], "last_seen_at": row["last_seen_at"]}
    if "check_count" in keys:
        out["check_count"] = row["check_count"]
    if "locked_until" in keys and (row["locked_until"] or 0) > dbm.now():
        out["locked_until"] = row["locked_until"]
    return out


async def get(db: aiosqlite.Connection, user_id: str) -> aiosqlite.Row | None:
    return await dbm.fetchone(db, f"SELECT * FROM users WHERE id = ? AND {LIVE}", (user_id,))


async def by_email(db: aiosqlite.Connection, email: str) -> aiosqlite.Row | None:
    return await dbm.fetchone(db, f"SELECT * FROM users WHERE email = ? AND {LIVE}", (email,))


async def create(db: aiosqlite.Connection, email: str, password_hash: str | None,
                 role: str = "user") -> str:
    """A new account (inside a transaction); 409 ``email_taken`` if the address is in use."""
    if await dbm.fetchone(db, "SELECT 1 FROM users WHERE email = ?", (email,)):
        raise ApiError(409, "email_taken", "an account with this email already exists: sign in")
    user_id = "usr_" + uuid.uuid4().hex[:20]
    await db.execute(
        "INSERT INTO users (id, email, role, password_hash, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (user_id, email, role, password_hash, dbm.now(), dbm.now()))
    return user_id


async def listing(db: aiosqlite.Connection, q: str | None, role: str | None, limit: int,
                  offset: int) -> tuple[list[dict], int]:
    where, params = [LIVE], []
    if q:
        where.append("(email LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\')")
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like]
    if role:
        where.append("role = ?")
        params.append(role)
    cond = " AND ".join(where)
    rows = await dbm.fetchall(db, f"""
        SELECT u.*, (SELECT COUNT(*) FROM checks c WHERE c.user_id = u.id) AS check_count
        FROM users u WHERE {cond} ORDER BY created_at DESC, id LIMIT ? OFFSET ?""",
                              (*params, limit, offset))
    (total,) = await dbm.fetchone(db, f"SELECT COUNT(*) FROM users WHERE {cond}", params)
    return [public(r) for r in rows], total


async def _guard_last_admin(db: aiosqlite.Connection, user_id: str) -> None:
    (others,) = await dbm.fetchone(
        db, f"SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND {LIVE}"
            " AND id != ?", (user_id,))
    if others == 0:
        raise ApiError(409, "last_admin", "this is the last active admin: make another admin first")


async def update(db: aiosqlite.Connection, user_id: str, *, role: str | None = None,
                 disabled: bool | None = None) -> tuple[dict, dict]:
    """Change role and/or disabled (inside a transaction): (the user, what changed: old/new)."""
    row = await get(db, user_id)
    if row is None:
        raise not_found("no such user")
    changes: dict = {}
    if role is not None and role != row["role"]:
        if role not in ROLES:
            raise ApiError(400, "bad_role", f"role must be one of {', '.join(ROLES)}")
        if row["role"] == "admin":
            await _guard_last_admin(db, user_id)
        changes["role"] = {"from": row["role"], "to": role}
    if disabled is not None and bool(disabled) != bool(row["disabled"]):
        if disabled and row["role"] == "admin":
            await _guard_last_admin(db, user_id)
        changes["disabled"] = {"from": bool(row["disabled"]), "to": bool(disabled)}
    if "role" in changes:
        await db.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
    if "disabled" in changes:
        await db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
    return public(await get(db, user_id)), changes


async def delete(db: aiosqlite.Connection, user_id: str) -> dict:
    """Delete an account and its data (inside a transaction); what was removed.

    Removed: its checks (and with them its pages and counts on flagged items), its reports and
    their history entries, its unsent mail, images nobody else checked, and open items that
    only its checks or reports kept in the queue. Kept: decided items (their decisions still
    apply to the image) and the audit trail.
    """
    row = await get(db, user_id)
    if row is None:
        raise not_found("no such user")
    if row["role"] == "admin":
        await _guard_last_admin(db, user_id)
    shas = [r["sha256"] for r in await dbm.fetchall(
        db, "SELECT DISTINCT sha256 FROM checks WHERE user_id = ?", (user_id,))]
    flagged = [r["flag_id"] for r in await dbm.fetchall(
        db, "SELECT flag_id FROM flag_reports WHERE user_id = ?", (user_id,))]
    removed = {"checks": (await db.execute("DELETE FROM checks WHERE user_id = ?", (user_id,))).rowcount,
               "reports": (await db.execute("DELETE FROM flag_reports WHERE user_id = ?",
                                            (user_id,))).rowcount}
    await db.execute("DELETE FROM flag_events WHERE actor = ? AND kind IN ('reported', 'reopened')",
                     (user_id,))
    removed["mail"] = (await db.execute(
        "DELETE FROM outbox WHERE user_id = ? AND state != 'sent'", (user_id,))).rowcount
    orphan = """state = 'open' AND decided_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.sha256 = flags.sha256)
        AND NOT EXISTS (SELECT 1 FROM flag_reports r WHERE r.flag_id = flags.id)"""
    removed["items"] = (await db.execute(
        f"DELETE FROM flags WHERE {orphan} AND (sha256 IN (SELECT value FROM json_each(?))"
        " OR id IN (SELECT value FROM json_each(?)))", (json.dumps(shas), json.dumps(flagged)))).rowcount
    removed["images"] = (await db.execute(
        """DELETE FROM images WHERE sha256 IN (SELECT value FROM json_each(?))
           AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.sha256 = images.sha256)
           AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.sha256 = images.sha256)""",
        (json.dumps(shas),))).rowcount
    await db.execute(
        "UPDATE users SET email = NULL, password_hash = NULL, disabled = 1, email_alerts = 0,"
        " queue_alerts = 0, deleted_at = ? WHERE id = ?", (dbm.now(), user_id))
    return removed


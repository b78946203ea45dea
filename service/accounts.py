"""Accounts (the ``users`` table): creating them, sign-in bookkeeping, what admins may change,
and deleting one with its data.

A deleted account keeps a tombstone row (its id, ``disabled`` and ``deleted_at``, nothing else):
tokens issued before the deletion name that id, and the tombstone makes them answer 403 instead
of creating the user again on first sight.
"""

from __future__ import annotations

import uuid

from service.errors import ApiError, not_found
from service.roles import ROLES
from service.store import Connection, Duplicate, chunks, for_update, in_list, now

LIVE = "deleted_at IS NULL"
#: the fields a user may change on their own account (``PATCH /v1/me``)
OWN_FIELDS = ("email", "email_alerts", "queue_alerts")


def public(row) -> dict:
    keys = row.keys()
    out = {"id": row["id"], "email": row["email"], "role": row["role"],
           "disabled": bool(row["disabled"]), "email_alerts": bool(row["email_alerts"]),
           "queue_alerts": bool(row["queue_alerts"]), "has_password": bool(row["password_hash"]),
           "created_at": row["created_at"], "last_seen_at": row["last_seen_at"]}
    if "check_count" in keys:
        out["check_count"] = row["check_count"]
    if "locked_until" in keys and (row["locked_until"] or 0) > now():
        out["locked_until"] = row["locked_until"]
    return out


async def get(conn: Connection, user_id: str):
    return await conn.fetchone(f"SELECT * FROM users WHERE id = ? AND {LIVE}", (user_id,))


async def by_email(conn: Connection, email: str):
    return await conn.fetchone(f"SELECT * FROM users WHERE email = ? AND {LIVE}", (email,))


async def email_in_use(conn: Connection, email: str, except_id: str | None = None) -> bool:
    return await conn.fetchval("SELECT 1 FROM users WHERE email = ? AND id != ?",
                               (email, except_id or "")) is not None


def email_taken() -> ApiError:
    return ApiError(409, "email_taken", "an account with this email already exists: sign in")


async def create(tx: Connection, email: str, password_hash: str | None, role: str = "user") -> str:
    """A new account (inside a transaction); 409 ``email_taken`` if the address is in use.

    The unique email decides, so two replicas registering one address at once make one account.
    """
    user_id = "usr_" + uuid.uuid4().hex[:20]
    inserted = await tx.execute(
        "INSERT INTO users (id, email, role, password_hash, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (user_id, email, role, password_hash, now(), now()))
    if not inserted:
        raise email_taken()
    return user_id


async def identity(conn: Connection, user_id: str):
    """What a request needs about its caller: role, email, disabled (tombstones included)."""
    return await conn.fetchone("SELECT role, email, disabled FROM users WHERE id = ?", (user_id,))


async def first_sight(tx: Connection, user_id: str, email: str | None, role: str) -> bool:
    """Create the row of a user seen for the first time with a token (inside a transaction);
    True if this call created it. An email already used by another account is not taken over.
    """
    if email and await email_in_use(tx, email):
        email = None
    sql = ("INSERT INTO users (id, email, role, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)"
           " ON CONFLICT DO NOTHING")
    if await tx.execute(sql, (user_id, email, role, now(), now())):
        return True
    if email is None or await identity(tx, user_id) is not None:
        return False  # another request (or replica) created it first
    # The email was taken in the meantime by another account: keep it theirs.
    return bool(await tx.execute(sql, (user_id, None, role, now(), now())))


async def update_own(tx: Connection, user_id: str, changes: dict) -> None:
    """Apply ``PATCH /v1/me`` changes (keys from OWN_FIELDS; inside a transaction)."""
    if changes.get("email") and await email_in_use(tx, changes["email"], user_id):
        raise ApiError(409, "email_taken", "another account uses this email")
    fields = [k for k in changes if k in OWN_FIELDS]
    sets = ", ".join(f"{k} = ?" for k in fields)
    try:
        await tx.execute(f"UPDATE users SET {sets} WHERE id = ?",
                         (*(changes[k] for k in fields), user_id))
    except Duplicate as e:  # another account took the address since the check above
        raise ApiError(409, "email_taken", "another account uses this email") from e


async def set_password_hash(tx: Connection, user_id: str, password_hash: str) -> None:
    await tx.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))


# Lockout after failed sign-ins is kept per client address and email by
# ``service.ratelimit.FailureLock``; a success still clears the older per-account columns.

async def record_success(tx: Connection, user_id: str) -> None:
    await tx.execute("UPDATE users SET failed_logins = 0, locked_until = 0, last_seen_at = ?"
                     " WHERE id = ?", (now(), user_id))


async def listing(conn: Connection, q: str | None, role: str | None, limit: int,
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
    rows = await conn.fetchall(f"""
        SELECT u.*, (SELECT COUNT(*) FROM checks c WHERE c.user_id = u.id) AS check_count
        FROM users u WHERE {cond} ORDER BY created_at DESC, id LIMIT ? OFFSET ?""",
                               (*params, limit, offset))
    total = await conn.fetchval(f"SELECT COUNT(*) FROM users WHERE {cond}", params)
    return [public(r) for r in rows], total


async def active_admin_email(conn: Connection) -> str | None:
    """The email of an active admin, if there is one (None also when there is none)."""
    row = await conn.fetchone(
        f"SELECT email FROM users WHERE role = 'admin' AND disabled = 0 AND {LIVE} LIMIT 1")
    return None if row is None else (row["email"] or "")


async def make_admin(tx: Connection, user_id: str) -> None:
    await tx.execute("UPDATE users SET role = 'admin', disabled = 0 WHERE id = ?", (user_id,))


async def _guard_last_admin(tx: Connection, user_id: str) -> None:
    """409 unless another active admin remains. The active admins' rows stay locked until the
    transaction ends (PostgreSQL), so two admins demoting each other at once cannot both pass:
    the second waits for the first and then no longer counts it."""
    admins = await tx.fetchall(
        f"SELECT id FROM users WHERE role = 'admin' AND disabled = 0 AND {LIVE}"
        f" ORDER BY id{for_update(tx)}")
    if not any(r["id"] != user_id for r in admins):
        raise ApiError(409, "last_admin", "this is the last active admin: make another admin first")


async def update(tx: Connection, user_id: str, *, role: str | None = None,
                 disabled: bool | None = None) -> tuple[dict, dict]:
    """Change role and/or disabled (inside a transaction): (the user, what changed: old/new)."""
    row = await get(tx, user_id)
    if row is None:
        raise not_found("no such user")
    changes: dict = {}
    if role is not None and role != row["role"]:
        if role not in ROLES:
            raise ApiError(400, "bad_role", f"role must be one of {', '.join(ROLES)}")
        if row["role"] == "admin":
            await _guard_last_admin(tx, user_id)
        changes["role"] = {"from": row["role"], "to": role}
    if disabled is not None and bool(disabled) != bool(row["disabled"]):
        if disabled and row["role"] == "admin":
            await _guard_last_admin(tx, user_id)
        changes["disabled"] = {"from": bool(row["disabled"]), "to": bool(disabled)}
    if "role" in changes:
        await tx.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
    if "disabled" in changes:
        await tx.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
    return public(await get(tx, user_id)), changes


async def delete(tx: Connection, user_id: str) -> dict:
    """Delete an account and its data (inside a transaction); what was removed.

    Removed: its checks (and with them its pages and counts on flagged items), its reports and
    their history entries, its unsent mail, images nobody else checked, and open items that
    only its checks or reports kept in the queue. Kept: decided items (their decisions still
    apply to the image) and the audit trail.
    """
    row = await get(tx, user_id)
    if row is None:
        raise not_found("no such user")
    if row["role"] == "admin":
        await _guard_last_admin(tx, user_id)
    shas = [r["sha256"] for r in await tx.fetchall(
        "SELECT DISTINCT sha256 FROM checks WHERE user_id = ?", (user_id,))]
    flagged = [r["flag_id"] for r in await tx.fetchall(
        "SELECT flag_id FROM flag_reports WHERE user_id = ?", (user_id,))]
    removed = {"checks": await tx.execute("DELETE FROM checks WHERE user_id = ?", (user_id,)),
               "reports": await tx.execute("DELETE FROM flag_reports WHERE user_id = ?", (user_id,))}
    await tx.execute("DELETE FROM flag_events WHERE actor = ? AND kind IN ('reported', 'reopened')",
                     (user_id,))
    removed["mail"] = await tx.execute(
        "DELETE FROM outbox WHERE user_id = ? AND state != 'sent'", (user_id,))
    orphan = """state = 'open' AND decided_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.sha256 = flags.sha256)
        AND NOT EXISTS (SELECT 1 FROM flag_reports r WHERE r.flag_id = flags.id)"""
    removed["items"] = removed["images"] = 0
    for column, values in (("sha256", shas), ("id", flagged)):
        for part in chunks(values):
            listed, params = in_list(part)
            removed["items"] += await tx.execute(
                f"DELETE FROM flags WHERE {orphan} AND {column} IN {listed}", params)
    for part in chunks(shas):
        listed, params = in_list(part)
        removed["images"] += await tx.execute(
            f"""DELETE FROM images WHERE sha256 IN {listed}
               AND NOT EXISTS (SELECT 1 FROM checks c WHERE c.sha256 = images.sha256)
               AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.sha256 = images.sha256)""", params)
        for table in ("video_frames", "video_tracks"):  # a video's frames go with its image row
            await tx.execute(
                f"""DELETE FROM {table} WHERE sha256 IN {listed}
                   AND NOT EXISTS (SELECT 1 FROM images i WHERE i.sha256 = {table}.sha256)""",
                params)
    await tx.execute("DELETE FROM jobs WHERE user_id = ?", (user_id,))
    await tx.execute(
        "UPDATE users SET email = NULL, password_hash = NULL, disabled = 1, email_alerts = 0,"
        " queue_alerts = 0, deleted_at = ? WHERE id = ?", (now(), user_id))
    return removed

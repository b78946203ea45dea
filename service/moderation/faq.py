"""FAQ entries that admins write and the public help page shows (plain text, ordered)."""

from __future__ import annotations

import aiosqlite

from service import db as dbm
from service.errors import bad_request, not_found

MAX_QUESTION, MAX_ANSWER = 300, 10_000


def public(row) -> dict:
    return {"id": row["id"], "question": row["question"], "answer": row["answer"],
            "position": row["position"], "published": bool(row["published"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def validate(body: dict, partial: bool) -> dict:
    """The accepted fields of a create (all required but position/published) or update."""
    out = {}
    for name, limit in (("question", MAX_QUESTION), ("answer", MAX_ANSWER)):
        if name in body:
            value = body[name]
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise bad_request("bad_field", f"{name} must be non-empty text up to {limit} characters")
            out[name] = value.strip()
        elif not partial:
            raise bad_request("missing_field", f"{name} is required")
    if "position" in body:
        if not isinstance(body["position"], int) or isinstance(body["position"], bool):
            raise bad_request("bad_field", "position must be an integer")
        out["position"] = body["position"]
    if "published" in body:
        if not isinstance(body["published"], bool):
            raise bad_request("bad_field", "published must be true or false")
        out["published"] = int(body["published"])
    if partial and not out:
        raise bad_request("nothing_to_change", "send question, answer, position or published")
    return out


async def entries(db: aiosqlite.Connection, published_only: bool) -> list[dict]:
    where = "WHERE published = 1" if published_only else ""
    rows = await dbm.fetchall(db, f"SELECT * FROM faq {where} ORDER BY position, id")
    return [public(r) for r in rows]


async def create(db: aiosqlite.Connection, fields: dict) -> dict:
    now = dbm.now()
    if "position" not in fields:
        (top,) = await dbm.fetchone(db, "SELECT COALESCE(MAX(position), 0) FROM faq")
        fields["position"] = top + 1
    cur = await db.execute(
        "INSERT INTO faq (question, answer, position, published, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (fields["question"], fields["answer"], fields["position"], fields.get("published", 1), now, now))
    return public(await dbm.fetchone(db, "SELECT * FROM faq WHERE id = ?", (cur.lastrowid,)))


async def update(db: aiosqlite.Connection, faq_id: int, fields: dict) -> dict:
    sets = ", ".join(f"{k} = ?" for k in fields)
    cur = await db.execute(f"UPDATE faq SET {sets}, updated_at = ? WHERE id = ?",
                           (*fields.values(), dbm.now(), faq_id))
    if cur.rowcount == 0:
        raise not_found("no such FAQ entry")
    return public(await dbm.fetchone(db, "SELECT * FROM faq WHERE id = ?", (faq_id,)))


async def delete(db: aiosqlite.Connection, faq_id: int) -> dict:
    row = await dbm.fetchone(db, "SELECT * FROM faq WHERE id = ?", (faq_id,))
    if row is None:
        raise not_found("no such FAQ entry")
    await db.execute("DELETE FROM faq WHERE id = ?", (faq_id,))
    return public(row)

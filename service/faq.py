"""FAQ entries that admins write and the public help page shows (plain text, ordered)."""

from __future__ import annotations

from service.errors import bad_request, not_found
from service.store import Connection, now
from service.text import has_visible

MAX_QUESTION, MAX_ANSWER = 300, 10_000
MAX_POSITION = 2**31 - 1  # an INTEGER column: 32 bits on PostgreSQL


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
            if not isinstance(value, str) or not has_visible(value) or len(value) > limit:
                raise bad_request("bad_field", f"{name} must be non-empty text up to {limit} characters")
            out[name] = value.strip()
        elif not partial:
            raise bad_request("missing_field", f"{name} is required")
    if "position" in body:
        position = body["position"]
        if not isinstance(position, int) or isinstance(position, bool) \
                or not -MAX_POSITION <= position <= MAX_POSITION:
            raise bad_request("bad_field", f"position must be an integer within ±{MAX_POSITION}")
        out["position"] = body["position"]
    if "published" in body:
        if not isinstance(body["published"], bool):
            raise bad_request("bad_field", "published must be true or false")
        out["published"] = int(body["published"])
    if partial and not out:
        raise bad_request("nothing_to_change", "send question, answer, position or published")
    return out


async def entries(conn: Connection, published_only: bool) -> list[dict]:
    where = "WHERE published = 1" if published_only else ""
    rows = await conn.fetchall(f"SELECT * FROM faq {where} ORDER BY position, id")
    return [public(r) for r in rows]


async def create(tx: Connection, fields: dict) -> dict:
    at = now()
    if "position" not in fields:
        top = await tx.fetchval("SELECT COALESCE(MAX(position), 0) FROM faq")
        fields["position"] = min(top + 1, MAX_POSITION)
    row = await tx.fetchone(
        "INSERT INTO faq (question, answer, position, published, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        (fields["question"], fields["answer"], fields["position"], fields.get("published", 1), at, at))
    return public(row)


async def update(tx: Connection, faq_id: int, fields: dict) -> dict:
    sets = ", ".join(f"{k} = ?" for k in fields)
    row = await tx.fetchone(f"UPDATE faq SET {sets}, updated_at = ? WHERE id = ? RETURNING *",
                            (*fields.values(), now(), faq_id))
    if row is None:
        raise not_found("no such FAQ entry")
    return public(row)


async def delete(tx: Connection, faq_id: int) -> dict:
    row = await tx.fetchone("DELETE FROM faq WHERE id = ? RETURNING *", (faq_id,))
    if row is None:
        raise not_found("no such FAQ entry")
    return public(row)

"""The audit trail: who did what, when, to what. Rows are only ever added.

``record`` runs inside the caller's transaction, so an action and its audit row are written
together or not at all.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from service.store import Connection, now

CSV_COLUMNS = ("id", "at", "actor", "actor_email", "action", "target", "detail", "ip")


async def record(tx: Connection, actor, action: str, target: str | None = None,
                 detail: dict | None = None, ip: str | None = None) -> None:
    """``actor``: a User (id and email are kept), a plain string such as ``"cli"``, or None."""
    actor_id = getattr(actor, "id", actor)
    actor_email = getattr(actor, "email", None)
    await tx.execute(
        "INSERT INTO audit (at, actor, actor_email, action, target, detail, ip)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (now(), actor_id, actor_email, action, target,
         json.dumps(detail, sort_keys=True) if detail else None, ip))


def _filters(action: str | None, actor: str | None, target: str | None) -> tuple[str, list]:
    where, params = [], []
    if action:  # "admin." matches every admin action
        if action.endswith("."):
            where.append("action LIKE ? ESCAPE '\\'")
            params.append(action.replace("_", "\\_") + "%")
        else:
            where.append("action = ?")
            params.append(action)
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if target:
        where.append("target = ?")
        params.append(target)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _row(r) -> dict:
    return {"id": r["id"], "at": r["at"], "actor": r["actor"], "actor_email": r["actor_email"],
            "action": r["action"], "target": r["target"],
            "detail": json.loads(r["detail"]) if r["detail"] else None, "ip": r["ip"]}


async def entries(conn: Connection, *, action=None, actor=None, target=None,
                  limit: int = 100, before: int | None = None) -> list[dict]:
    """Newest first; ``before`` is the id of the last entry of the previous page."""
    where, params = _filters(action, actor, target)
    if before is not None:
        where += (" AND " if where else " WHERE ") + "id < ?"
        params.append(before)
    rows = await conn.fetchall(f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ?",
                               (*params, limit))
    return [_row(r) for r in rows]


def _cell(value) -> str:
    """Spreadsheet-safe text: a leading = + - @ would be read as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def export_csv(conn: Connection, *, action=None, actor=None, target=None) -> str:
    """Every matching entry, oldest first, as CSV with an ISO 8601 UTC time column."""
    where, params = _filters(action, actor, target)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    last = 0
    while True:  # in pages by id, so a long trail is never held in memory twice
        page_where = where + (" AND " if where else " WHERE ") + "id > ?"
        rows = await conn.fetchall(f"SELECT * FROM audit{page_where} ORDER BY id LIMIT 1000",
                                   (*params, last))
        for r in rows:
            at = datetime.fromtimestamp(r["at"], UTC).isoformat(timespec="seconds")
            writer.writerow([r["id"], at, *(_cell(r[c]) for c in CSV_COLUMNS[2:])])
        if len(rows) < 1000:
            return out.getvalue()
        last = rows[-1]["id"]

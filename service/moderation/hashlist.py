"""Hash lists: decided items as CSV (PDQ hash, verdict, note, date), so that moderation teams
share decisions without sharing images; imported entries act like decisions.

Columns: ``pdq`` (64 hexadecimal digits), ``verdict`` (``fake`` or ``real``), ``note``,
``decided_at`` (ISO 8601 in UTC, or Unix seconds), ``source`` (on export: ``local`` for this
service's own decisions, else the list an entry was imported from). An import names its
source; importing the same source again updates its entries (one per hash and source).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from service.errors import ApiError
from service.pdq.hashing import parse_hash
from service.store import Connection, now

COLUMNS = ("pdq", "verdict", "note", "decided_at", "source")
MAX_NOTE = 2000
MAX_ROWS = 100_000
MAX_ERRORS = 20


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _parse_time(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # ValueError if not a date
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def export_csv(conn: Connection) -> str:
    rows = await conn.fetchall("""
        SELECT i.pdq, f.override_verdict AS verdict, f.decision_note AS note, f.decided_at
        FROM flags f JOIN images i ON i.sha256 = f.sha256
        WHERE f.override_verdict IS NOT NULL AND i.pdq IS NOT NULL ORDER BY f.decided_at""")
    listed = await conn.fetchall(
        "SELECT hash, verdict, note, decided_at, source FROM hash_list ORDER BY id")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow((r["pdq"], r["verdict"], r["note"] or "", _iso(r["decided_at"]), "local"))
    for r in listed:
        writer.writerow((r["hash"], r["verdict"], r["note"] or "", _iso(r["decided_at"]),
                         r["source"]))
    return out.getvalue()


def parse_csv(text: str) -> list[tuple[str, str, str | None, float | None]]:
    """(hash, verdict, note, decided_at) per row; 400 ``bad_csv`` listing the bad lines."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "pdq" not in header or "verdict" not in header:
        raise ApiError(400, "bad_csv", "the first line must name the columns, with pdq and verdict")
    reader.fieldnames = header
    entries, errors = [], []
    try:
        for row in reader:
            line = reader.line_num
            if len(entries) >= MAX_ROWS:
                raise ApiError(413, "too_many_rows", f"at most {MAX_ROWS} rows per import")
            h = parse_hash(row.get("pdq") or "")
            verdict = (row.get("verdict") or "").strip().lower()
            note = (row.get("note") or "").strip() or None
            try:
                decided = _parse_time(row.get("decided_at") or "")
            except ValueError:
                errors.append({"line": line, "error": "decided_at is not a date"})
                continue
            if h is None:
                errors.append({"line": line, "error": "pdq must be 64 hexadecimal digits"})
            elif verdict not in ("fake", "real"):
                errors.append({"line": line, "error": "verdict must be fake or real"})
            elif note is not None and len(note) > MAX_NOTE:
                errors.append({"line": line, "error": f"note is longer than {MAX_NOTE}"})
            else:
                entries.append((h, verdict, note, decided))
    except csv.Error as e:
        errors.append({"line": reader.line_num, "error": f"not CSV: {e}"})
    if errors:
        raise ApiError(400, "bad_csv", f"{len(errors)} bad line(s); nothing was imported",
                       lines=errors[:MAX_ERRORS])
    return entries


async def import_entries(tx: Connection, entries, source: str, admin_id: str) -> dict:
    """Insert or update each entry of ``source`` (inside a transaction)."""
    added = updated = 0
    at = now()
    for h, verdict, note, decided in entries:
        existing = await tx.fetchone("SELECT id FROM hash_list WHERE hash = ? AND source = ?",
                                     (h, source))
        if existing is None:
            await tx.execute(
                "INSERT INTO hash_list (hash, verdict, note, decided_at, source, imported_by,"
                " imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (h, verdict, note, decided, source, admin_id, at))
            added += 1
        else:
            await tx.execute(
                "UPDATE hash_list SET verdict = ?, note = ?, decided_at = ?, imported_by = ?,"
                " imported_at = ? WHERE id = ?",
                (verdict, note, decided, admin_id, at, existing["id"]))
            updated += 1
    return {"source": source, "added": added, "updated": updated}

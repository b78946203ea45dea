"""Hash lists: decided items as CSV (PDQ hash, verdict, note, date), so that moderation teams
share decisions without sharing images; imported entries act like decisions.

Columns: ``pdq`` (64 hexadecimal digits), ``verdict`` (``fake`` or ``real``), ``note``,
``decided_at`` (ISO 8601 in UTC, or Unix seconds), ``source`` (on export: ``local`` for this
service's own decisions, else the list an entry was imported from), ``windows`` (the item's
nine 95 % window hashes, so that 5 % crops meet it) and ``faces`` (one descriptor per face,
`service.pdq.descriptors`: its box and an 8x8 block signature, no image). Only ``pdq`` and
``verdict`` are required: an entry without ``faces`` (an older list) applies only to images
without a face, since a face swap keeps the PDQ hash of its frame; an item without a face is
exported with one descriptor of its whole frame. An import names its source; importing the
same source again updates its entries (one per hash and source).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime

from service.errors import ApiError
from service.pdq import descriptors
from service.pdq.faces import decode_thumbnail, face_boxes
from service.pdq.hashing import parse_hash
from service.store import Connection, now
from service.text import visible_or_none

COLUMNS = ("pdq", "verdict", "note", "decided_at", "source", "windows", "faces")
MAX_NOTE = 2000
MAX_ROWS = 100_000
MAX_ERRORS = 20


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _iso_or_blank(ts: float | None) -> str:
    """`_iso` for the export: a stored moment it cannot write (imported before such dates were
    refused) is written as no date, not a failed export."""
    try:
        return _iso(ts)
    except (OverflowError, OSError, ValueError):
        return ""


def _parse_time(text: str) -> float | None:
    """Unix seconds or an ISO 8601 date; ValueError if it is neither, or not a moment the export
    can write back as a date (``inf``, ``nan``, ``1e20``, before year 1 or after 9999)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # ValueError if not a date
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = moment.timestamp()
    try:
        _iso(value)
    except (OverflowError, OSError) as e:  # NaN and years out of range are ValueError already
        raise ValueError(f"{text} is out of range") from e
    return value


def _item_columns(row) -> tuple[str, str]:
    """The ``windows`` and ``faces`` of a decided item, from its stored image (CPU-bound)."""
    result = json.loads(row["result"]) if row["result"] else {}
    extra = (row["pdq_extra"] or "-").split()[1:]
    # a video keeps its other frames' hashes where an image keeps its windows: not windows
    windows = extra if len(extra) == 9 and result.get("media", "image") == "image" else []
    faces = descriptors.describe_item(decode_thumbnail(row["thumbnail"]), face_boxes(result))
    return descriptors.format_windows(windows), descriptors.format_faces(faces)


def _local_rows(rows) -> list[tuple]:
    return [(r["pdq"], r["verdict"], r["note"] or "", _iso_or_blank(r["decided_at"]), "local",
             *_item_columns(r)) for r in rows]


async def export_csv(conn: Connection) -> str:
    rows = await conn.fetchall("""
        SELECT i.pdq, i.pdq_extra, i.result, i.thumbnail, f.override_verdict AS verdict,
               f.decision_note AS note, f.decided_at
        FROM flags f JOIN images i ON i.sha256 = f.sha256
        WHERE f.override_verdict IS NOT NULL AND i.pdq IS NOT NULL ORDER BY f.decided_at""")
    listed = await conn.fetchall(
        "SELECT hash, verdict, note, decided_at, source, windows, faces FROM hash_list"
        " ORDER BY id")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(await asyncio.to_thread(_local_rows, rows))
    for r in listed:
        writer.writerow((r["hash"], r["verdict"], r["note"] or "", _iso_or_blank(r["decided_at"]),
                         r["source"], r["windows"] or "", r["faces"] or ""))
    return out.getvalue()


def _descriptor_columns(row: dict) -> tuple[str | None, str | None]:
    """The ``windows`` and ``faces`` of an imported row, in canonical form (None if empty);
    `descriptors.BadDescriptor` if malformed."""
    windows = descriptors.parse_windows(row.get("windows") or "")
    faces = descriptors.parse_faces(row.get("faces") or "")
    return (descriptors.format_windows(windows) or None,
            descriptors.format_faces(faces) or None)


def parse_csv(text: str) -> list[tuple]:
    """(hash, verdict, note, decided_at, windows, faces) per row; 400 ``bad_csv`` listing the
    bad lines, each with a stable ``code`` (``bad_faces`` or ``bad_windows`` for a malformed
    descriptor; ``conflicting_verdict`` for a hash listed again with the other verdict, which
    the list does not settle: a row repeated with the same verdict is taken, the last one
    winning)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "pdq" not in header or "verdict" not in header:
        raise ApiError(400, "bad_csv", "the first line must name the columns, with pdq and verdict")
    reader.fieldnames = header
    entries, errors = [], []
    first_seen: dict[str, tuple[int, str]] = {}  # hash -> (its first line, its verdict)
    try:
        for row in reader:
            line = reader.line_num
            if len(entries) >= MAX_ROWS:
                raise ApiError(413, "too_many_rows", f"at most {MAX_ROWS} rows per import")
            h = parse_hash(row.get("pdq") or "")
            verdict = (row.get("verdict") or "").strip().lower()
            note = visible_or_none(row.get("note") or "")
            try:
                decided = _parse_time(row.get("decided_at") or "")
            except ValueError:
                errors.append({"line": line, "code": "bad_date",
                               "error": "decided_at is not a date"})
                continue
            try:
                windows, faces = _descriptor_columns(row)
            except descriptors.BadDescriptor as e:
                code = "bad_windows" if str(e).startswith("windows") else "bad_faces"
                errors.append({"line": line, "code": code, "error": str(e)})
                continue
            if h is None:
                errors.append({"line": line, "code": "bad_pdq",
                               "error": "pdq must be 64 hexadecimal digits"})
            elif verdict not in ("fake", "real"):
                errors.append({"line": line, "code": "bad_verdict",
                               "error": "verdict must be fake or real"})
            elif note is not None and len(note) > MAX_NOTE:
                errors.append({"line": line, "code": "long_note",
                               "error": f"note is longer than {MAX_NOTE}"})
            elif first_seen.setdefault(h, (line, verdict))[1] != verdict:
                first, earlier = first_seen[h]
                errors.append({"line": line, "code": "conflicting_verdict",
                               "error": f"this pdq is {verdict} here but {earlier} on line"
                                        f" {first}"})
            else:
                entries.append((h, verdict, note, decided, windows, faces))
    except csv.Error as e:
        errors.append({"line": reader.line_num, "code": "not_csv", "error": f"not CSV: {e}"})
    if errors:
        raise ApiError(400, "bad_csv", f"{len(errors)} bad line(s); nothing was imported",
                       lines=errors[:MAX_ERRORS])
    return entries


async def import_entries(tx: Connection, entries, source: str, admin_id: str) -> dict:
    """Insert or update each entry of ``source`` (inside a transaction). An entry whose windows
    or faces change is stored anew (a new id), since the near-duplicate index and its cache
    follow entries by id."""
    added = updated = 0
    at = now()
    insert = ("INSERT INTO hash_list (hash, verdict, note, decided_at, source, imported_by,"
              " imported_at, windows, faces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    for h, verdict, note, decided, windows, faces in entries:
        existing = await tx.fetchone(
            "SELECT id, windows, faces FROM hash_list WHERE hash = ? AND source = ?", (h, source))
        if existing is None:
            await tx.execute(insert, (h, verdict, note, decided, source, admin_id, at, windows,
                                      faces))
            added += 1
            continue
        if (existing["windows"], existing["faces"]) == (windows, faces):
            await tx.execute(
                "UPDATE hash_list SET verdict = ?, note = ?, decided_at = ?, imported_by = ?,"
                " imported_at = ? WHERE id = ?",
                (verdict, note, decided, admin_id, at, existing["id"]))
        else:
            await tx.execute("DELETE FROM hash_list WHERE id = ?", (existing["id"],))
            await tx.execute(insert, (h, verdict, note, decided, source, admin_id, at, windows,
                                      faces))
        updated += 1
    return {"source": source, "added": added, "updated": updated}

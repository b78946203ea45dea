"""The flagged queue: one item per image, how it got there, and the moderators' decisions.

An item (``flags`` row) is created when a check's verdict is fake or uncertain, or when a user
reports a wrong verdict. An image whose PDQ hash is near an item's (``near.py``) joins that item
as a *variant* instead of becoming an item of its own, and the item's decision applies to it.
Counts and pages are derived from the ``checks`` table, so deleting a
user's checks removes them from every item too. ``version`` grows with every state change
(decision, reopening); a decision names the version it was made on, and a stale one is refused
(optimistic concurrency), so two moderators cannot overwrite each other silently.
"""

from __future__ import annotations

import json
import uuid

from service.checks.answer import detectors_view
from service.errors import ApiError, not_found
from service.store import Connection, chunks, for_update, in_list, now

STATES = ("open", "confirmed_fake", "real", "dismissed")
#: decision -> (state, the verdict it imposes on every later check of the image)
DECISIONS = {"fake": ("confirmed_fake", "fake"), "real": ("real", "real"),
             "dismissed": ("dismissed", None)}
SORTS = {"score": "f.score DESC, f.last_seen_at DESC", "recent": "f.last_seen_at DESC, f.id",
         "reports": "report_count DESC, f.last_seen_at DESC"}
FLAGGING_VERDICTS = ("fake", "uncertain")
MAX_VERSION = 2**31 - 1  # flags.version is an INTEGER column

#: the item's own image and its variants
_SHAS = "(SELECT f.sha256 UNION ALL SELECT v.sha256 FROM flag_variants v WHERE v.flag_id = f.id)"
_COUNTS = f"""
    (SELECT COUNT(*) FROM checks c WHERE c.sha256 IN {_SHAS}) AS check_count,
    (SELECT COUNT(DISTINCT c.user_id) FROM checks c WHERE c.sha256 IN {_SHAS}) AS user_count,
    (SELECT COUNT(*) FROM flag_variants v WHERE v.flag_id = f.id) AS variant_count,
    (SELECT COUNT(*) FROM flag_reports r WHERE r.flag_id = f.id) AS report_count,
    (SELECT email FROM users u WHERE u.id = f.decided_by) AS decided_by_email
"""


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:20]


async def add_event(tx: Connection, flag_id: str, kind: str, actor: str | None = None,
                    detail: dict | None = None) -> None:
    await tx.execute("INSERT INTO flag_events (flag_id, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?)",
                     (flag_id, now(), actor, kind, json.dumps(detail) if detail else None))


async def _locked(tx: Connection, sha256: str):
    """The image's item, locked until the transaction ends (PostgreSQL; SQLite's write lock
    already serialises transactions), so two replicas never act on one item at once."""
    return await tx.fetchone(f"SELECT * FROM flags WHERE sha256 = ?{for_update(tx)}", (sha256,))


async def _create(tx: Connection, sha256: str, reason: str, score, detector_verdict):
    """The image's item, created now unless another transaction just did: (row, created)."""
    flag_id, at = new_id("flg_"), now()
    created = await tx.execute(
        "INSERT INTO flags (id, sha256, reason, score, detector_verdict, queued_at, created_at,"
        " last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
        (flag_id, sha256, reason, score, detector_verdict, at, at, at))
    if created:
        await _index_hashes(tx, flag_id, sha256)
    return await _locked(tx, sha256), bool(created)


async def _index_hashes(tx: Connection, flag_id: str, sha256: str) -> None:
    """Store the item's PDQ hashes, which the near-duplicate index follows."""
    image = await tx.fetchone("SELECT pdq, pdq_extra FROM images WHERE sha256 = ?", (sha256,))
    if image is None or not image["pdq"]:
        return
    extra = (image["pdq_extra"] or "-").split()  # trimmed hash or '-', then the windows
    rows = [(image["pdq"], 0)] + [(extra[0], 0)] * (extra[0] != "-")
    rows += [(h, 1) for h in extra[1:]]
    # one statement for the item's ~11 hashes (full, trimmed, nine windows), in this order
    values = ", ".join(["(?, ?, ?)"] * len(rows))
    await tx.execute(f"INSERT INTO flag_hashes (flag_id, hash, is_window) VALUES {values}"
                     " ON CONFLICT (flag_id, hash) DO NOTHING",
                     [v for h, is_window in rows for v in (flag_id, h, is_window)])


async def flag_for(tx: Connection, sha256: str):
    """The item holding this image as its own or as a variant (locked), or None."""
    row = await _locked(tx, sha256)
    if row is None:
        variant = await tx.fetchone("SELECT flag_id FROM flag_variants WHERE sha256 = ?",
                                    (sha256,))
        if variant is not None:
            row = await tx.fetchone(f"SELECT * FROM flags WHERE id = ?{for_update(tx)}",
                                    (variant["flag_id"],))
    return row


async def _join_variant(tx: Connection, check: dict, hits, verdict, score) -> str | None:
    """The image joins the nearest item among ``hits`` as a variant (or was one already)."""
    at = now()
    known = await tx.fetchone("SELECT flag_id FROM flag_variants WHERE sha256 = ?",
                              (check["sha256"],))
    if known is not None:
        await tx.execute("UPDATE flag_variants SET last_seen_at = ? WHERE sha256 = ?",
                         (at, check["sha256"]))
        await tx.execute("UPDATE flags SET last_seen_at = ? WHERE id = ?", (at, known["flag_id"]))
        return known["flag_id"]
    for hit in hits:
        if hit.kind != "item":
            continue
        item = await tx.fetchone(f"SELECT id FROM flags WHERE id = ?{for_update(tx)}", (hit.id,))
        if item is None:  # deleted since it was indexed
            continue
        joined = await tx.execute(
            "INSERT INTO flag_variants (sha256, flag_id, distance, created_at, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
            (check["sha256"], hit.id, hit.distance, at, at))
        await tx.execute("UPDATE flags SET last_seen_at = ? WHERE id = ?", (at, hit.id))
        if joined:
            await add_event(tx, hit.id, "variant", None,
                            {"check_id": check["id"], "sha256": check["sha256"],
                             "distance": hit.distance, "verdict": verdict, "score": score})
        return hit.id
    return None


async def record_sighting(tx: Connection, check: dict, hits=()) -> str | None:
    """After a check is stored (inside its transaction): flag it, or count it on its item.

    ``hits`` (`near.Hit`, nearest first) are the items the image is a near-duplicate of: it
    joins the nearest as a variant rather than becoming an item of its own.
    """
    detectors = check.get("detectors") or {}
    score = detectors.get("score", check.get("score"))
    verdict = detectors.get("verdict", check.get("verdict"))
    row = await _locked(tx, check["sha256"])
    if row is None:
        joined = await _join_variant(tx, check, hits, verdict, score)
        if joined is not None:
            return joined
        if check["verdict"] not in FLAGGING_VERDICTS:
            return None
        row, created = await _create(tx, check["sha256"], "detectors", score, verdict)
        if created:
            await add_event(tx, row["id"], "flagged", None,
                            {"check_id": check["id"], "verdict": check["verdict"], "score": score})
            return row["id"]
    await tx.execute("UPDATE flags SET last_seen_at = ?, score = ?, detector_verdict = ?"
                     " WHERE id = ?", (now(), score, verdict, row["id"]))
    return row["id"]


async def report(tx: Connection, check: dict, user_id: str, note: str | None,
                 page_url: str | None) -> dict:
    """A "wrong verdict" report on one of the user's checks (inside a transaction).

    One report per user and image (a repeat updates it). A report on a decided item reopens it,
    unless the same user already reported it since that decision; the decision keeps applying
    to checks until moderators decide again.
    """
    at = now()
    detectors = check.get("detectors") or {}
    flag = await flag_for(tx, check["sha256"])
    if flag is None:
        flag, _ = await _create(tx, check["sha256"], "report",
                                detectors.get("score", check["score"]), detectors.get("verdict"))
    page_url = page_url or check.get("page_url")
    mine = await tx.fetchone("SELECT id, created_at FROM flag_reports WHERE flag_id = ? AND user_id = ?",
                             (flag["id"], user_id))
    if mine is None:
        report_id = new_id("rep_")
        await tx.execute(
            "INSERT INTO flag_reports (id, flag_id, check_id, user_id, note, page_url, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (report_id, flag["id"], check["id"], user_id, note, page_url, at))
    else:
        report_id = mine["id"]
        await tx.execute(
            "UPDATE flag_reports SET check_id = ?, note = ?, page_url = ?, created_at = ?,"
            " notified_version = NULL WHERE id = ?", (check["id"], note, page_url, at, report_id))
    fresh = mine is None or (flag["decided_at"] is not None and mine["created_at"] < flag["decided_at"])
    state = flag["state"]
    await tx.execute("UPDATE flags SET last_seen_at = ? WHERE id = ?", (at, flag["id"]))
    await add_event(tx, flag["id"], "reported", user_id,
                    {"check_id": check["id"], "note": note, "page_url": page_url})
    if state != "open" and fresh:
        await tx.execute(
            "UPDATE flags SET state = 'open', version = version + 1, queued_at = ?,"
            " announced_at = NULL WHERE id = ?", (at, flag["id"]))
        await add_event(tx, flag["id"], "reopened", user_id, {"was": state})
        state = "open"
    return {"flag_id": flag["id"], "report_id": report_id, "status": state}


def _decision(r) -> dict | None:
    if r["decided_at"] is None:
        return None
    return {"decision": r["override_verdict"] or "dismissed", "by": r["decided_by"],
            "by_email": r["decided_by_email"], "at": r["decided_at"], "note": r["decision_note"]}


async def pages(conn: Connection, flag_id: str, sha256: str, limit: int) -> list[dict]:
    """Where the image was met: pages of its checks and of its reports, most frequent first."""
    rows = await conn.fetchall("""
        SELECT page_url, SUM(n) AS n, MAX(at) AS last_at FROM (
            SELECT p.page_url, p.seen_count AS n, p.last_seen_at AS at FROM check_pages p
            JOIN checks c ON c.id = p.check_id WHERE c.sha256 = ? OR c.sha256 IN (
                SELECT v.sha256 FROM flag_variants v WHERE v.flag_id = ?)
            UNION ALL
            SELECT page_url, 1, created_at FROM flag_reports WHERE flag_id = ? AND page_url IS NOT NULL
        ) AS seen GROUP BY page_url ORDER BY n DESC, last_at DESC LIMIT ?""",
        (sha256, flag_id, flag_id, limit))
    return [{"url": r["page_url"], "count": r["n"], "last_seen_at": r["last_at"]} for r in rows]


async def _summary(conn, r, page_limit: int) -> dict:
    return {
        "id": r["id"], "sha256": r["sha256"], "state": r["state"], "reason": r["reason"],
        "score": r["score"], "detector_verdict": r["detector_verdict"], "version": r["version"],
        "check_count": r["check_count"], "user_count": r["user_count"],
        "report_count": r["report_count"], "variant_count": r["variant_count"],
        "pages": await pages(conn, r["id"], r["sha256"], page_limit),
        "decision": _decision(r),
        "created_at": r["created_at"], "queued_at": r["queued_at"], "last_seen_at": r["last_seen_at"],
        "image_url": f"/v1/moderation/items/{r['id']}/image.jpg",
        "heatmap_url": f"/v1/moderation/items/{r['id']}/heatmap.png",
    }


async def list_items(conn: Connection, state: str, sort: str, limit: int, offset: int
                     ) -> tuple[list[dict], int]:
    """``state`` is one of STATES or ``all``; ``sort`` one of SORTS."""
    where, params = ("", ()) if state == "all" else ("WHERE f.state = ?", (state,))
    rows = await conn.fetchall(
        f"SELECT f.*, {_COUNTS} FROM flags f {where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?",
        (*params, limit, offset))
    total = await conn.fetchval(f"SELECT COUNT(*) FROM flags f {where}", params)
    return [await _summary(conn, r, 3) for r in rows], total


async def get_item(conn: Connection, flag_id: str) -> dict | None:
    """Everything a moderator needs to decide: faces, each detector's score, reports, history."""
    r = await conn.fetchone(f"SELECT f.*, {_COUNTS} FROM flags f WHERE f.id = ?", (flag_id,))
    if r is None:
        return None
    item = await _summary(conn, r, 100)
    image = await conn.fetchone("SELECT result FROM images WHERE sha256 = ?", (r["sha256"],))
    result = json.loads(image["result"]) if image else {}
    item.update({k: result.get(k) for k in (
        "faces", "decisive_face", "face_found", "trained", "models_version", "width",
        "height", "warning")})
    item["detectors"] = detectors_view(result) if result else {
        "verdict": None, "score": None, "label": None, "confidence": None, "models": {}}
    item["models"] = item["detectors"]["models"]  # the decisive face's, per detector
    item["provenance"] = result.get("provenance")
    item["pdq"] = (result.get("pdq") or {}).get("hash")
    item["media"] = result.get("media", "image")
    if item["media"] == "video":
        item.update(await _video_view(conn, r["sha256"], result))
    variants = await conn.fetchall("""
        SELECT v.*, (SELECT COUNT(*) FROM checks c WHERE c.sha256 = v.sha256) AS check_count,
               (SELECT result FROM images i WHERE i.sha256 = v.sha256) AS result
        FROM flag_variants v WHERE v.flag_id = ? ORDER BY v.created_at""", (flag_id,))
    item["variants"] = [_variant(v) for v in variants]
    reports = await conn.fetchall("""
        SELECT r.*, u.email FROM flag_reports r LEFT JOIN users u ON u.id = r.user_id
        WHERE r.flag_id = ? ORDER BY r.created_at""", (flag_id,))
    item["reports"] = [{"id": x["id"], "user_id": x["user_id"], "email": x["email"],
                        "note": x["note"], "page_url": x["page_url"], "check_id": x["check_id"],
                        "created_at": x["created_at"]} for x in reports]
    events = await conn.fetchall("""
        SELECT e.*, u.email FROM flag_events e LEFT JOIN users u ON u.id = e.actor
        WHERE e.flag_id = ? ORDER BY e.id""", (flag_id,))
    item["history"] = [{"at": e["at"], "kind": e["kind"], "actor": e["actor"],
                        "actor_email": e["email"],
                        "detail": json.loads(e["detail"]) if e["detail"] else None} for e in events]
    return item


async def decide(conn: Connection, flag_id: str, decision: str, note: str | None,
                 version: int, moderator) -> int:
    """Apply a decision made on ``version`` (inside a transaction); the new version.

    404 if there is no such item, 409 ``conflict`` if someone changed it since ``version``.
    """
    state, verdict = DECISIONS[decision]
    # a version past the INTEGER column (32 bits on PostgreSQL) is no item's: stale, as on SQLite
    changed = await conn.execute(
        "UPDATE flags SET state = ?, override_verdict = ?, decided_by = ?, decided_role = ?,"
        " decided_at = ?, decision_note = ?, version = version + 1 WHERE id = ? AND version = ?",
        (state, verdict, moderator.id, moderator.role, now(), note, flag_id, version)
    ) if abs(version) <= MAX_VERSION else 0
    if changed == 0:
        row = await conn.fetchone(
            f"SELECT f.*, {_COUNTS} FROM flags f WHERE f.id = ?", (flag_id,))
        if row is None:
            raise not_found("no such item")
        raise ApiError(409, "conflict",
                       f"this item changed since version {version} (now version {row['version']},"
                       f" {row['state']}): reload it and decide again",
                       current={"version": row["version"], "state": row["state"],
                                "decision": _decision(row)})
    await add_event(conn, flag_id, "decided", moderator.id,
                    {"decision": decision, "note": note, "version": version + 1})
    return version + 1


async def _video_view(conn: Connection, sha256: str, result: dict) -> dict:
    """A video item's tracks and timelines, and where its frames and per-track heatmaps are
    served: through a check of the video that was sent with its bytes (moderators may read
    every check)."""
    rows = await conn.fetchall("SELECT id, result FROM checks WHERE sha256 = ?"
                               " ORDER BY created_at, id", (sha256,))
    sent = next((row["id"] for row in rows
                 if json.loads(row["result"]).get("image_sent", True)), None)
    base = f"/v1/checks/{sent}" if sent is not None else None
    return {"video": result.get("video"), "check_id": sent,
            "frame_url": f"{base}/frames/{{frame_index}}.jpg" if base else None,
            "track_heatmap_url": f"{base}/heatmap.png?track={{track}}" if base else None}


def _variant(v) -> dict:
    result = json.loads(v["result"]) if v["result"] else {}
    return {"sha256": v["sha256"], "distance": v["distance"], "check_count": v["check_count"],
            "width": result.get("width"), "height": result.get("height"),
            "detectors": {"verdict": result.get("verdict"), "score": result.get("score")},
            "first_seen_at": v["created_at"], "last_seen_at": v["last_seen_at"]}


def _override(row, match: dict | None) -> dict:
    # Who decided is shown by role only: a moderator's identity is not given to every user.
    return {"verdict": row["override_verdict"], "decided_by": row["decided_role"] or "moderator",
            "decided_at": row["decided_at"], "note": row["decision_note"], "item_id": row["id"],
            "match": match}


_DECIDED = "SELECT f.id, f.override_verdict, f.decided_role, f.decided_at, f.decision_note"


async def override(conn: Connection, sha256: str, hits=()) -> dict | None:
    """The decision that applies to this image, if any, and how it was found.

    In order: a decision on this very image (``match`` None); on the item it is a variant of;
    on the nearest decided item or imported hash-list entry among ``hits`` (``match`` is
    ``{distance, item_id}``, plus ``list_entry_id`` and ``source`` for a hash-list entry).
    """
    # the first two in one statement (each part finds at most one row: sha256 is unique in
    # both tables), the image's own item first
    row = await conn.fetchone(
        f"{_DECIDED}, NULL AS distance, 0 AS via FROM flags f"
        " WHERE f.sha256 = ? AND f.override_verdict IS NOT NULL"
        f" UNION ALL {_DECIDED}, v.distance, 1 AS via FROM flag_variants v"
        " JOIN flags f ON f.id = v.flag_id WHERE v.sha256 = ? AND f.override_verdict IS NOT NULL"
        " ORDER BY via LIMIT 1", (sha256, sha256))
    if row is not None:
        if row["via"] == 0:
            return _override(row, None)
        return _override(row, {"distance": row["distance"], "item_id": row["id"]})
    for hit in hits:
        if hit.kind == "item":
            row = await conn.fetchone(
                f"{_DECIDED} FROM flags f WHERE f.id = ? AND f.override_verdict IS NOT NULL",
                (hit.id,))
            if row is not None:
                return _override(row, {"distance": hit.distance, "item_id": row["id"]})
            continue
        row = await conn.fetchone("SELECT * FROM hash_list WHERE id = ?", (int(hit.id),))
        if row is not None:
            return {"verdict": row["verdict"], "decided_by": "hash list",
                    "decided_at": row["decided_at"], "note": row["note"], "item_id": None,
                    "match": {"distance": hit.distance, "item_id": None,
                              "list_entry_id": row["id"], "source": row["source"]}}
    return None


async def counts(conn: Connection) -> dict:
    """How many items are in each state."""
    rows = await conn.fetchall("SELECT state, COUNT(*) AS n FROM flags GROUP BY state")
    found = {r["state"]: r["n"] for r in rows}
    return {s: found.get(s, 0) for s in STATES}


async def unannounced(tx: Connection) -> list:
    """Open items no alert has named yet, oldest first (locked: one sender announces them)."""
    return await tx.fetchall(
        "SELECT id, reason, score, detector_verdict, version, queued_at FROM flags"
        f" WHERE announced_at IS NULL AND state = 'open' ORDER BY queued_at, id{for_update(tx)}")


async def any_unannounced(conn: Connection) -> bool:
    return await conn.fetchval(
        "SELECT 1 FROM flags WHERE announced_at IS NULL AND state = 'open' LIMIT 1") is not None


async def mark_announced(tx: Connection, flag_ids: list[str]) -> None:
    for part in chunks(flag_ids):
        listed, params = in_list(part)
        await tx.execute(f"UPDATE flags SET announced_at = ? WHERE id IN {listed}", (now(), *params))


async def image_inputs(conn: Connection, flag_id: str):
    return await conn.fetchone("""
        SELECT i.thumbnail, i.cams, i.width, i.height, i.result FROM flags f
        JOIN images i ON i.sha256 = f.sha256 WHERE f.id = ?""", (flag_id,))

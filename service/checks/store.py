"""Checks: score an image once per model version, remember it, answer from memory after.

The ``images`` and ``checks`` tables are written here only. What other concerns do with a
check (the moderation queue, email alerts) is passed in by ``create_app`` as two callbacks, so
this module depends on none of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from service.checks.answer import apply_verdict, detectors_view
from service.checks.evidence import Evidence
from service.checks.images import store_image
from service.detection.detector import Detector, grids_to_bytes
from service.store import Connection, Database, now

#: fields of the detectors' result that a check answers as they are
PUBLIC_FIELDS = (
    "face_found", "faces", "decisive_face", "trained", "models_version", "width", "height",
    "note", "warning", "video",
)


class _Request(NamedTuple):
    """Who asked for a check: what `CheckService.record` needs besides the result."""

    user_id: str | None
    started: float
    page_url: str | None
    source_url: str | None


class CheckService:
    """Plain-Python core of the checks API (testable without HTTP)."""

    def __init__(self, db: Database, detector: Detector, *,
                 override_for: Callable[[Connection, str], Awaitable[dict | None]] | None = None,
                 after_check: Callable[[Connection, dict, str | None], Awaitable[None]] | None = None,
                 evidence: Evidence | None = None, near=None):
        """``override_for(conn, sha256)``: a verdict that replaces the detectors' (moderators');
        ``after_check(tx, check, user_id)``: runs inside the transaction that stores a check.
        ``evidence`` computes provenance and PDQ hashes beside the detectors; with ``near``
        (`moderation.near.NearDuplicates`) both callbacks also get the near-duplicate ``hits``.
        """
        self.db = db
        self.detector = detector
        self.override_for = override_for
        self.after_check = after_check
        self.evidence = evidence
        self.near = near
        self.inflight: dict[str, asyncio.Future] = {}

    async def scored(self, sha256: str) -> dict | None:
        """The stored result for this image under the current models, if any."""
        row = await self.db.fetchone(
            "SELECT result FROM images WHERE sha256 = ? AND models_version = ?",
            (sha256, self.detector.ensemble.version))
        return json.loads(row["result"]) if row else None

    async def _score(self, data: bytes, sha256: str, request: _Request
                     ) -> tuple[dict, bool, dict | None]:
        """(result, cached, check): every request for the same image shares one scoring task.

        The task is registered before the store is consulted, so a request arriving while
        another is between "not in the store" and "stored" waits for it instead of scoring
        again; and it runs on its own, so a caller that goes away does not cancel the others.
        ``check`` is the request's own check when the task stored it with the image (the request
        that started the task), else None: the caller records it.
        """
        pending = self.inflight.get(sha256)
        if pending is not None:  # the same image is being scored right now: share it
            result, _, _ = await asyncio.shield(pending)
            return result, True, None
        task = asyncio.ensure_future(self._score_once(data, sha256, request))
        self.inflight[sha256] = task
        task.add_done_callback(lambda t: self._settled(sha256, t))
        return await asyncio.shield(task)

    def _settled(self, sha256: str, task: asyncio.Future) -> None:
        if self.inflight.get(sha256) is task:
            del self.inflight[sha256]
        if not task.cancelled():
            task.exception()  # mark retrieved: its callers may all have gone

    async def _score_once(self, data: bytes, sha256: str, request: _Request
                          ) -> tuple[dict, bool, dict | None]:
        known = await self.scored(sha256)
        if known is not None:
            return known, True, None
        # Provenance is read from the bytes meanwhile; the PDQ hash starts on prepare's decoded
        # pixels, beside the face finder and the detectors.
        evidence = self.evidence.start(data) if self.evidence is not None else None
        try:
            result, grids, thumbnail = await self.detector.analyze(
                data, on_decoded=evidence.pixels if evidence is not None else None)
        except BaseException:
            if evidence is not None:
                evidence.cancel()
            raise
        provenance, fp = await evidence.result() if evidence is not None else (None, None)
        result["provenance"] = provenance
        result["pdq"] = fp.public() if fp is not None else None
        extra = " ".join([fp.trimmed or "-", *fp.windows]) if fp is not None else None
        row = (sha256, result, thumbnail, grids_to_bytes(grids),
               fp.hash if fp is not None else None, extra)
        if self.near is not None:  # the face checks of near-duplicates, outside the transaction
            await self.near.verify_ahead(self.db, sha256, result, thumbnail)
        # The image and the requester's check in one transaction (one commit, one fsync). If
        # the check cannot be stored (its own fields), the image still is, and the requester's
        # own `record` meets the error, as the requests sharing this scoring do not.
        try:
            async with self.db.transaction() as tx:
                await store_image(tx, *row)
                check = await self._record(tx, sha256, result, False, *request)
        except Exception:
            async with self.db.transaction() as tx:
                await store_image(tx, *row)
            check = None
        return result, False, check

    async def check(self, data: bytes, user_id: str | None, *, page_url: str | None = None,
                    source_url: str | None = None) -> dict:
        started = time.perf_counter()
        sha256 = hashlib.sha256(data).hexdigest()
        result, cached, check = await self._score(
            data, sha256, _Request(user_id, started, page_url, source_url))
        if check is not None:  # stored with the image
            return check
        return await self.record(sha256, result, cached, user_id, started,
                                 page_url=page_url, source_url=source_url)

    async def lookup(self, sha256: str, user_id: str | None, *, page_url: str | None = None
                     ) -> dict | None:
        """A check answered from the store alone (no pixels), or None if never scored.

        Knowing an image's SHA-256 is not having the image: the answer is the verdict, scores
        and face boxes, never the image itself (no heatmap, which is drawn over it)."""
        started = time.perf_counter()
        result = await self.scored(sha256)
        if result is None:
            return None
        return await self.record(sha256, result, True, user_id, started, page_url=page_url,
                                 image_sent=False)

    async def record(self, sha256: str, result: dict, cached: bool, user_id: str | None,
                     started: float, *, page_url=None, source_url=None,
                     image_sent: bool = True) -> dict:
        """Stores the check: one row per user and image, counted and stamped on every repeat
        (with the pages it was met on), so re-posts do not inflate any count.

        ``image_sent`` False (a lookup by hash): the caller may not have the image, so the check
        carries the verdict but no rendition of it (no heatmap), unless this user sent the
        image itself before."""
        # With near-duplicates, one transaction from the decision lookup to the sighting: of
        # two copies checked at once, the second sees the item the first created.
        async with self.db.transaction() as tx:
            return await self._record(tx, sha256, result, cached, user_id, started, page_url,
                                      source_url, image_sent)

    async def _record(self, tx: Connection, sha256: str, result: dict, cached: bool,
                      user_id: str | None, started: float, page_url=None, source_url=None,
                      image_sent: bool = True) -> dict:
        """`record` inside the caller's transaction."""
        stamp = now()
        fields = {k: result[k] for k in PUBLIC_FIELDS if k in result}
        if not fields.get("face_found"):
            fields.update(faces=[], decisive_face=None)
        extra: tuple = ()
        if self.near is not None:
            extra = (await self.near.hits(tx, result.get("pdq"), sha256),)
        override = await self.override_for(tx, sha256, *extra) if self.override_for else None
        prior = None
        if user_id is not None:
            prior = await tx.fetchone(
                "SELECT id, created_at, seen_count, source_url, result FROM checks"
                " WHERE user_id = ? AND sha256 = ?", (user_id, sha256))
        if prior is not None and json.loads(prior["result"]).get("image_sent", True):
            image_sent = True  # the user sent the pixels once: they have the image
        check = {
            "id": prior["id"] if prior else "chk_" + uuid.uuid4().hex,
            "sha256": sha256,
            **fields,
            "media": result.get("media", "image"),
            "detectors": detectors_view(result),
            "provenance": result.get("provenance"),
            "pdq": result.get("pdq"),
            "cached": cached,
            "page_url": page_url,
            "source_url": source_url or (prior["source_url"] if prior else None),
            "image_sent": image_sent,
            "count": prior["seen_count"] + 1 if prior else 1,
            "created_at": prior["created_at"] if prior else stamp,
            "last_seen_at": stamp,
        }
        _shown(check, override)
        check["heatmap_url"] = (f"/v1/checks/{check['id']}/heatmap.png" if image_sent
                                else None)
        check["elapsed_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
        stored = json.dumps(check)
        score = check["detectors"]["score"]
        if prior is None:
            await tx.execute(
                "INSERT INTO checks (id, sha256, user_id, verdict, score, result, page_url,"
                " source_url, created_at, seen_count, last_seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (check["id"], sha256, user_id, check["verdict"], score, stored, page_url,
                 check["source_url"], stamp, stamp))
        else:
            await tx.execute(
                "UPDATE checks SET verdict = ?, score = ?, result = ?,"
                " page_url = COALESCE(?, page_url), source_url = ?,"
                " seen_count = seen_count + 1, last_seen_at = ? WHERE id = ?",
                (check["verdict"], score, stored, page_url,
                 check["source_url"], stamp, check["id"]))
        if page_url:
            await tx.execute(
                "INSERT INTO check_pages (check_id, page_url, seen_count, last_seen_at)"
                " VALUES (?, ?, 1, ?) ON CONFLICT (check_id, page_url) DO UPDATE SET"
                " seen_count = check_pages.seen_count + 1,"
                " last_seen_at = excluded.last_seen_at",
                (check["id"], page_url, stamp))
        if self.after_check is not None:
            await self.after_check(tx, check, user_id, *extra)
        return check

    async def get(self, check_id: str) -> dict | None:
        """A stored check, with the moderators' current decision applied."""
        row = await self.db.fetchone("SELECT result, user_id FROM checks WHERE id = ?",
                                     (check_id,))
        if row is None:
            return None
        check = json.loads(row["result"])
        if "detectors" in check and "models" in check["detectors"]:
            override = (await self.override_for(self.db, check["sha256"])
                        if self.override_for else None)
            _shown(check, override)
        check["user_id"] = row["user_id"]
        check["cached"] = True
        return check

    async def list_for(self, user_id: str, limit: int, before: float | None,
                       offset: int = 0) -> list[dict]:
        """The user's checks, most recently seen first."""
        rows = await self.db.fetchall(
            "SELECT result FROM checks WHERE user_id = ? AND last_seen_at < ?"
            " ORDER BY last_seen_at DESC LIMIT ? OFFSET ?",
            (user_id, before if before is not None else float("inf"), limit, offset))
        return [json.loads(r["result"]) for r in rows]

    async def heatmap_inputs(self, sha256: str):
        return await self.db.fetchone(
            "SELECT thumbnail, cams, width, height, result FROM images WHERE sha256 = ?",
            (sha256,))


def _shown(check: dict, override: dict | None) -> None:
    """The top level: the verdict shown (``answer.apply_verdict``), with the note and the
    decider of a moderator's or an imported hash list's decision."""
    apply_verdict(check, override)
    if override is not None:
        _apply(check, override)
        check["decided_by"] = override.get("decided_by") or "moderator"


def _apply(check: dict, override: dict) -> None:
    """A moderator's decision (or an imported one) replaces the detectors' verdict."""
    check["moderation"] = override
    check["verdict"] = override["verdict"]
    check["label"] = "FAKE" if override["verdict"] == "fake" else "REAL"
    check["confidence"] = 100.0
    match = override.get("match")
    if override["decided_by"] == "hash list":
        check["note"] = (f"decided by an imported hash list ({match['source']}): "
                         f"{override['verdict']}, for a near-duplicate {match['distance']} of 256"
                         " bits away")
    elif match is not None:
        check["note"] = (f"decided by a moderator: {override['verdict']}, for a near-duplicate"
                         f" of this image ({match['distance']} of 256 bits apart)")
    else:
        check["note"] = "decided by a moderator: " + override["verdict"]

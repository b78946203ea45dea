"""Which flagged items and imported hash-list entries an image is a near-duplicate of.

The index lives in memory, one per service process, and follows the tables: every lookup first
reads the ``flag_hashes`` and ``hash_list`` rows it has not loaded yet (inside the caller's
transaction, so a check sees the items that the checks before it created, on any replica).
Ids of concurrent PostgreSQL transactions can become visible out of order, so the ids skipped
below the highest one loaded are read again until their rows come (`_Follower`).

A PDQ match is only a candidate: a face swap keeps its source frame's PDQ hash. A flagged item
is a hit only if the faces also agree (`service.pdq.faces`), compared on the two images'
stored thumbnails (with no face found in either, their whole frames, compared as one face); a
hash-list entry, which comes without pixels, only if the image's faces agree with the entry's
face descriptors (`service.pdq.descriptors`; an item without a face is described by its whole
frame), and an entry without descriptors (an older list) only for images in which no face was
found.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass

from service.pdq.descriptors import Listed, listed_distance, parse_faces, parse_windows
from service.pdq.faces import (
    Limits,
    Seen,
    decode_thumbnail,
    face_boxes,
    verified_distance,
)
from service.pdq.hashing import DEFAULT_MIN_QUALITY, Fingerprint
from service.pdq.index import HashIndex
from service.store import Connection, in_list

log = logging.getLogger("service.near")

#: PDQ's customary match threshold (ThreatExchange / Hasher-Matcher-Actioner): 31 of 256 bits
DEFAULT_MAX_DISTANCE = 31
#: a stricter one for an item's 95 % window hashes: a window matches a *shifted* copy, and
#: another photo taken a moment later (same pose, the person moved a little) is one too
DEFAULT_WINDOW_MAX_DISTANCE = 18
_LOOKBACK = 1000
_MAX_HOLES = 200  # more and a refresh reads the range below the top instead (`_Follower`)
_CACHE = 4096  # (image, item) verdicts of the face comparison kept in memory


@dataclass(frozen=True, order=True)
class Hit:
    distance: int
    kind: str  # "item" (a flagged item) | "list" (an imported hash-list entry)
    id: str


class _Follower:
    """Loads the rows of one table once each.

    Ids are handed out in order but, on PostgreSQL, become visible in commit order: a row can
    appear below the highest id loaded. So the ids below the top that were not loaded (within
    `_LOOKBACK` of it) are remembered as *holes*, and a refresh reads the rows above the top and
    those in the holes, by id: with no new rows it reads none. A hole is an id whose transaction
    is still open, rolled back, or skipped (PostgreSQL spends an id on ``ON CONFLICT DO
    NOTHING``), or a row deleted before it was loaded; holes further than `_LOOKBACK` below
    the top are given up, as the range read before did. With more than `_MAX_HOLES` holes the
    whole range below the top is read again instead (few statements, many rows)."""

    def __init__(self):
        self.loaded: set[int] = set()
        self.holes: set[int] = set()
        self.top = 0

    def where(self) -> tuple[str, tuple]:
        """The condition (on ``id``) that selects the rows to read, and its parameters."""
        if len(self.holes) > _MAX_HOLES:
            return "id > ?", (self.top - _LOOKBACK,)
        if self.holes:
            listed, params = in_list(sorted(self.holes))
            return f"(id > ? OR id IN {listed})", (self.top, *params)
        return "id > ?", (self.top,)

    def take(self, rows: list) -> list:
        """The rows read by `where` that are new, remembered as loaded."""
        fresh = [r for r in rows if r["id"] not in self.loaded]
        if not fresh:
            return fresh
        ids = [r["id"] for r in fresh]
        self.loaded.update(ids)
        top = max(self.top, max(ids))
        low = top - _LOOKBACK
        self.holes.update(range(max(self.top, low) + 1, top + 1))
        self.holes.difference_update(ids)
        if top > self.top:
            self.holes = {h for h in self.holes if h > low}
        self.top = top
        return fresh


def _seen(row, with_windows: bool) -> Seen | None:
    """An ``images`` row as `Seen` (thumbnail decoded), or None without a usable hash."""
    result = json.loads(row["result"]) if row["result"] else {}
    extra = (row["pdq_extra"] or "-").split() if with_windows else []
    return _seen_of(result, row["thumbnail"], extra[1:])


def _seen_of(result: dict, thumbnail: bytes | None, windows: list[str]) -> Seen | None:
    pdq = result.get("pdq")
    if not pdq or not pdq.get("hash"):
        return None
    return Seen(Fingerprint.from_public(pdq, windows), face_boxes(result),
                decode_thumbnail(thumbnail))


class NearDuplicates:
    def __init__(self, max_distance: int = DEFAULT_MAX_DISTANCE,
                 min_quality: int = DEFAULT_MIN_QUALITY,
                 window_max_distance: int = DEFAULT_WINDOW_MAX_DISTANCE,
                 face_limits: Limits = Limits()):
        self.max_distance = max_distance
        self.min_quality = min_quality
        self.window_max_distance = min(window_max_distance, max_distance)
        self.face_limits = face_limits
        self.index = HashIndex()
        self._items = _Follower()  # flag_hashes
        self._list = _Follower()  # hash_list
        self._verified: OrderedDict[tuple[str, str, str], int | None] = OrderedDict()
        self._generation = 0  # grows whenever the index gains rows
        #: sha256 -> (generation, candidates) found by `verify_ahead`, for its check's `hits`
        self._ahead: OrderedDict[str, tuple[int, dict]] = OrderedDict()

    async def refresh(self, conn: Connection) -> None:
        """Load the ``flag_hashes`` and ``hash_list`` rows not loaded yet (one statement)."""
        items, item_params = self._items.where()
        listed, list_params = self._list.where()
        read = await conn.fetchall(
            "SELECT 0 AS src, id, flag_id, hash, is_window, NULL AS windows FROM flag_hashes"
            f" WHERE {items} UNION ALL SELECT 1 AS src, id, NULL, hash, 0, windows FROM"
            f" hash_list WHERE {listed} ORDER BY src, id", (*item_params, *list_params))
        rows = self._items.take([r for r in read if r["src"] == 0])
        self.index.add_many((r["hash"], ("item", r["flag_id"], r["is_window"])) for r in rows)
        added = len(rows)
        rows = self._list.take([r for r in read if r["src"] == 1])
        self.index.add_many((h, ("list", str(r["id"]), int(i > 0))) for r in rows
                            for i, h in enumerate([r["hash"], *(r["windows"] or "").split()]))
        if added or rows:
            self._generation += 1

    def usable(self, pdq: dict | None) -> bool:
        return bool(pdq and pdq.get("hash") and (pdq.get("quality") or 0) >= self.min_quality)

    async def hits(self, conn: Connection, pdq: dict | None, sha256: str | None = None
                   ) -> list[Hit]:
        """Items and list entries within the threshold of the image's hashes whose faces agree
        with the image's, nearest first. ``sha256`` names the image's stored row (its
        thumbnail and faces): without it nothing can be verified, so nothing is a hit."""
        if not self.usable(pdq):
            return []
        await self.refresh(conn)
        ahead = self._ahead.pop(sha256, None) if sha256 is not None else None
        if ahead is not None and ahead[0] == self._generation:
            best = ahead[1]  # the index has not changed since `verify_ahead` searched it
        else:
            best = self._candidates(pdq)
        if not best:
            return []
        if sha256 is None:
            return []
        row = await conn.fetchone("SELECT result, thumbnail FROM images WHERE sha256 = ?",
                                  (sha256,))
        if row is None:
            return []
        result = json.loads(row["result"]) if row["result"] else {}
        if not (result.get("pdq") or {}).get("hash"):
            return []  # no usable hash stored (as `_seen` finds it)
        query = None  # the thumbnail is decoded only for a candidate not compared yet
        out = []
        for kind, id_ in best:
            key = (sha256, kind, id_)
            if key in self._verified:  # compared before (`verify_ahead`, an earlier check)
                self._verified.move_to_end(key)
                verified = self._verified[key]
            else:
                if query is None:
                    query = _seen_of(result, row["thumbnail"], [])
                verified = await self._verify(conn, sha256, query, kind, id_)
            if verified is not None:
                out.append(Hit(verified, kind, id_))
        return sorted(out)

    def _candidates(self, pdq: dict) -> dict[tuple[str, str], int]:
        """(kind, id) -> distance of every item and list entry the index holds within the
        thresholds of the image's hashes (before the faces are compared)."""
        best: dict[tuple[str, str], int] = {}
        for h in (pdq["hash"], pdq.get("trimmed")):
            if not h:
                continue
            for distance, (kind, id_, window) in self.index.search(h, self.max_distance):
                if window and distance > self.window_max_distance:
                    continue
                if distance < best.get((kind, id_), 257):
                    best[(kind, id_)] = distance
        return best

    async def verify_ahead(self, conn: Connection, sha256: str, result: dict,
                           thumbnail: bytes | None) -> None:
        """Compare the faces of a newly scored image with the candidates the index holds now,
        before the check's transaction opens: the face check (10-15 ms of CPU per candidate)
        then does not run while the transaction holds its locks (on SQLite, the database's
        write lock, which every other check waits for). `hits`, inside the transaction,
        refreshes the index and takes these outcomes from its memory; a candidate added in
        between is compared there. ``result`` and ``thumbnail`` are what the transaction will
        store for ``sha256``, so the comparison is the one `hits` would make from the row."""
        pdq = result.get("pdq")
        if not self.usable(pdq):
            return
        best = self._candidates(pdq)
        self._ahead[sha256] = (self._generation, best)
        if len(self._ahead) > _CACHE:  # checks that failed before their `hits`
            self._ahead.popitem(last=False)
        todo = [key for key in best if (sha256, *key) not in self._verified]
        if not todo:
            return
        # as `hits` reads it back: the result through JSON, the stored thumbnail
        query = _seen_of(json.loads(json.dumps(result)), thumbnail, [])
        if query is None:
            return
        for kind, id_ in todo:
            try:
                await self._verify(conn, sha256, query, kind, id_)
            except Exception as e:  # a shortcut only: `hits` compares it in the transaction
                log.warning("near-duplicate %s %s not compared ahead: %s", kind, id_, e)

    async def _verify(self, conn: Connection, sha256: str | None, query: Seen, kind: str,
                      id_: str) -> int | None:
        """The distance at which the image meets the item (or list entry) with the same faces,
        or None."""
        key = (sha256 or query.fp.hash, kind, id_)
        if key in self._verified:
            self._verified.move_to_end(key)
            return self._verified[key]
        if kind == "list":
            row = await conn.fetchone("SELECT hash, windows, faces FROM hash_list WHERE id = ?",
                                      (int(id_),))
            if row is None:
                return None  # stored anew under another id by a later import
            # stored by the import, in canonical form
            entry = Listed(Fingerprint(row["hash"], 0, None, parse_windows(row["windows"] or "")),
                           parse_faces(row["faces"] or ""))
            found = await asyncio.to_thread(
                listed_distance, entry, query, self.max_distance, self.window_max_distance,
                self.face_limits)
        else:
            row = await conn.fetchone(
                "SELECT f.sha256, i.result, i.thumbnail, i.pdq_extra FROM flags f JOIN images i"
                " ON i.sha256 = f.sha256 WHERE f.id = ?", (id_,))
            if row is not None and sha256 is not None and row["sha256"] == sha256:
                # The image's own item (a flagged image checked again): not a near-duplicate of
                # itself. Its own decision is found by sha256 first, and a sighting counts on
                # its own item, so this hit could change nothing; its face check is skipped.
                found = None
            else:
                item = _seen(row, True) if row is not None else None
                if item is None:
                    return None
                found = await asyncio.to_thread(
                    verified_distance, item, query, self.max_distance,
                    self.window_max_distance, self.face_limits)
        self._verified[key] = found
        if len(self._verified) > _CACHE:
            self._verified.popitem(last=False)
        return found

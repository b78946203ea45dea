"""Storing a scored video beside the images: its ``images`` row, its frames and its tracks.

The ``images`` row makes a video look like an image to the rest of the service: the hash-first
lookup, the checks table, the moderation queue (its image and heatmap are the decisive track's
decisive frame) and moderators' decisions all work on it unchanged. Its PDQ hash is that frame's;
the other sampled frames' distinct hashes go where an image keeps its window hashes
(``pdq_extra``), so a flagged video is indexed under its frames too and a still taken from it
meets the video's item (at the stricter window distance).
"""

from __future__ import annotations

import json

import numpy as np

from service.checks.images import store_image
from service.detection.detector import grids_to_bytes
from service.detection.heatmap import render_heatmap
from service.pdq.hashing import distance
from service.store import Connection, Database
from service.video.analyze import Analysis

#: a frame hash this close to one already kept adds nothing (consecutive frames of one scene)
DISTINCT_BITS = 16
#: at most this many frame hashes are indexed per video
MAX_FRAME_HASHES = 32


def distinct_hashes(analysis: Analysis, min_quality: int, skip: str | None) -> list[str]:
    kept: list[str] = []
    for f in analysis.frames:
        fp = f.pdq
        if fp is None or fp.quality < min_quality or fp.hash == skip:
            continue
        if all(distance(fp.hash, k) > DISTINCT_BITS for k in kept):
            kept.append(fp.hash)
        if len(kept) >= MAX_FRAME_HASHES:
            break
    return kept


async def store(db: Database, sha256: str, analysis: Analysis, min_quality: int) -> None:
    """One transaction: the ``images`` row (replacing an older models version's), every
    sampled frame and every track's decisive frame."""
    result = analysis.result
    top = result["decisive_face"]
    frames = analysis.frames
    lead = analysis.decisive[top] if top is not None else (frames[0] if frames else None)
    grids = ([analysis.grids[top]] if top is not None and analysis.grids[top] is not None
             else [])
    fp = lead.pdq if lead is not None else None
    extra = None
    if fp is not None:
        hashes = distinct_hashes(analysis, min_quality, fp.hash)
        extra = " ".join([fp.trimmed or "-", *hashes])
    cams = np.stack(grids) if grids else np.zeros((0, 32, 32), np.float16)
    async with db.transaction() as tx:
        await store_image(tx, sha256, result, lead.thumbnail if lead is not None else None,
                          grids_to_bytes(cams.astype(np.float16)),
                          fp.hash if fp is not None else None, extra)
        await _frames(tx, sha256, analysis)


async def _frames(tx: Connection, sha256: str, analysis: Analysis) -> None:
    await tx.execute("DELETE FROM video_frames WHERE sha256 = ?", (sha256,))
    await tx.execute("DELETE FROM video_tracks WHERE sha256 = ?", (sha256,))
    for f in analysis.frames:
        await tx.execute(
            "INSERT INTO video_frames (sha256, frame_index, t, thumbnail, pdq, pdq_quality)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (sha256, f.index, f.t, f.small, f.pdq.hash if f.pdq else None,
             f.pdq.quality if f.pdq else None))
    for n, (frame, grid) in enumerate(zip(analysis.decisive, analysis.grids)):
        face = analysis.result["faces"][n]
        cams = grids_to_bytes(np.stack([grid]).astype(np.float16)) if grid is not None else None
        await tx.execute(
            "INSERT INTO video_tracks (sha256, track, frame_index, thumbnail, quad, cams, width,"
            " height) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sha256, face["track"], frame.index, frame.thumbnail, json.dumps(face["quad"]), cams,
             frame.width, frame.height))


async def frame_thumbnail(db: Connection, sha256: str, frame_index: int) -> bytes | None:
    row = await db.fetchone("SELECT thumbnail FROM video_frames WHERE sha256 = ? AND"
                            " frame_index = ?", (sha256, frame_index))
    return row["thumbnail"] if row is not None else None


async def track_heatmap_inputs(db: Connection, sha256: str, track: int):
    return await db.fetchone("SELECT thumbnail, quad, cams, width, height FROM video_tracks"
                             " WHERE sha256 = ? AND track = ?", (sha256, track))


def render_track(row) -> bytes:
    """The heatmap PNG of one track's decisive frame (blocking: the heatmap pool)."""
    import io

    grids = np.load(io.BytesIO(row["cams"]), allow_pickle=False)
    return render_heatmap(row["thumbnail"], row["width"], row["height"],
                          [json.loads(row["quad"])], grids)

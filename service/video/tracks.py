"""Faces linked across sampled frames into tracks, by box overlap and position.

Frame by frame, each face joins the live track whose last box it overlaps most (IoU), or, when
no box overlaps enough (a fast move between two samples), the track whose last box centre is
nearest, within ``max_shift`` of that box's size. A face matches one track at most and a track
one face per frame (greedy, best pair first). A track not seen for more than ``max_gap`` samples
is closed (the person left); a face matching no track opens a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_IOU = 0.3
#: a centre may move this many box sides between two samples and still be the same face
MAX_SHIFT = 0.75
#: samples a face may be missing (turned away, occluded) and still continue its track
MAX_GAP = 2


@dataclass
class Track:
    id: int
    entries: list[dict] = field(default_factory=list)  # each: the frame's face, plus t, frame

    @property
    def last(self) -> dict:
        return self.entries[-1]


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _shift(a, b) -> float:
    """Distance between the boxes' centres, in units of their mean side."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    d = ((ax + aw / 2 - bx - bw / 2) ** 2 + (ay + ah / 2 - by - bh / 2) ** 2) ** 0.5
    side = (aw + ah + bw + bh) / 4
    return d / side if side > 0 else float("inf")


def link(frames: list[tuple[int, float, list[dict]]], *, min_iou: float = MIN_IOU,
         max_shift: float = MAX_SHIFT, max_gap: int = MAX_GAP) -> list[Track]:
    """``frames``: (sample index, time, faces with ``box`` [x, y, w, h]) in order -> tracks."""
    tracks: list[Track] = []
    for position, (index, t, faces) in enumerate(frames):
        live = [tr for tr in tracks if position - tr.last["position"] <= max_gap + 1]
        pairs = []
        for fi, face in enumerate(faces):
            for tr in live:
                box = tr.last["box"]
                overlap = iou(face["box"], box)
                shift = _shift(face["box"], box)
                if overlap >= min_iou:
                    pairs.append((0, -overlap, fi, tr))
                elif shift <= max_shift * (position - tr.last["position"]):
                    pairs.append((1, shift, fi, tr))
        pairs.sort(key=lambda p: (p[0], p[1], p[2], p[3].id))
        taken_faces, taken_tracks = set(), set()
        assigned: dict[int, Track] = {}
        for _, _, fi, tr in pairs:
            if fi in taken_faces or tr.id in taken_tracks:
                continue
            taken_faces.add(fi)
            taken_tracks.add(tr.id)
            assigned[fi] = tr
        for fi, face in enumerate(faces):
            tr = assigned.get(fi)
            if tr is None:
                tr = Track(len(tracks))
                tracks.append(tr)
            tr.entries.append({**face, "frame_index": index, "t": t, "position": position})
    return tracks

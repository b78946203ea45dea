"""Face descriptors: what a hash-list entry carries of its faces, instead of pixels.

A PDQ hit is only a candidate (`service.pdq.faces`): a face swap keeps the hash of the frame it
was made from, so a decision applies only when every face also matches. A shared hash list has
no pixels, so each decided item carries, per face found in it:

* its box, in fractions of the image's width and height (the frame of the item's full PDQ
  hash; clipped, as the face check clips it, away from the image's edges);
* a *block signature*: the face's 32x32 grey patch, sampled and blurred as the face check
  samples it, normalised to zero mean and unit variance, then averaged down to 8x8 cells, each
  quantised to one byte (1/32 of a standard deviation per level). 64 bytes, 128 hex digits.

An item in which no face was found is described by its whole frame instead, as one face
(`describe_item`), so its entry is held to the same check; an entry without descriptors (an
older list) still applies only to images without a face.

That is an 8x8 mosaic of the face's relative brightness: no colour, no absolute brightness, no
detail finer than an eighth of the face's box (an eye is about one cell). It says where a face
is darker or lighter, not whose face it is (drawn, it is a few dozen grey squares), so a list
can be shared as a PDQ hash list is. What a face swap changes (the eyes, nose, mouth, the skin's
shading) still moves the cells.

The looked-up image has its pixels (its stored thumbnail): each descriptor's box is mapped into
it through the frames whose hashes met (as in the face check, without the pixel registration,
which needs both images), sampled there the same way over a small shift, and compared as the
face check compares patches (the largest of a 4x4 grid of mean absolute differences, here over
2x2 cells). Every face found in the looked-up image must also lie where a descriptor does.
The limits are measured by `bench.pdq_false_matches` (the ``hash_list`` figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.pdq.faces import (
    GRID,
    MAX_FRAMES_TRIED,
    MIN_INSIDE,
    SAMPLE,
    SHIFT,
    FaceCheck,
    Limits,
    Seen,
    _inside,
    _normalised,
    map_box,
    same_framing,
    sample,
)
from service.pdq.hashing import WHOLE, Box, Fingerprint, meeting_frames, parse_hash

CELLS = 8
#: standard deviations per quantisation level: bytes 0..255 cover -4 to +4
STEP = 1 / 32
#: a face of the looked-up image counts as described when a descriptor's box overlaps it so much
MIN_OVERLAP = 0.3
MAX_FACES = 32


class BadDescriptor(ValueError):
    """A face descriptor or window list that cannot be read."""


@dataclass(frozen=True)
class FaceDescriptor:
    box: Box  # in fractions of the image, already clipped as the face check clips it
    cells: np.ndarray  # CELLS x CELLS normalised grey levels (float32, as quantised)

    def text(self) -> str:
        levels = np.clip(np.round(self.cells / STEP) + 128, 0, 255).astype(np.uint8)
        return " ".join(f"{v:.4f}" for v in self.box) + " " + levels.tobytes().hex()


def _cells(patch: np.ndarray) -> np.ndarray:
    k = SAMPLE // CELLS
    return _normalised(patch).reshape(CELLS, k, CELLS, k).mean(axis=(1, 3))


def _quantised(cells: np.ndarray) -> np.ndarray:
    return ((np.clip(np.round(cells / STEP) + 128, 0, 255) - 128) * STEP).astype(np.float32)


def describe(pixels: np.ndarray | None, faces: list[Box]) -> list[FaceDescriptor]:
    """Descriptors of an image's faces (grey pixels: its stored thumbnail). A face mostly at
    the image's edge is left out, as the face check leaves it out."""
    if pixels is None:
        return []
    out = []
    for face in faces:
        box, inside = _inside(face, WHOLE)
        if inside < MIN_INSIDE:
            continue
        patch = sample(pixels, box)[SHIFT:SHIFT + SAMPLE, SHIFT:SHIFT + SAMPLE]
        out.append(FaceDescriptor(box, _quantised(_cells(patch))))
    return out


def describe_item(pixels: np.ndarray | None, faces: list[Box]) -> list[FaceDescriptor]:
    """A decided item's descriptors: one per face, or, for an item in which no face was found,
    one of its whole frame, as the face check compares two such images (a face swap whose face
    the face finder missed, like its frame, then still differs from the entry)."""
    return describe(pixels, faces or [WHOLE])


def format_faces(descriptors: list[FaceDescriptor]) -> str:
    """The ``faces`` column: descriptors separated by ``;``, each ``x0 y0 x1 y1 <128 hex>``."""
    return ";".join(d.text() for d in descriptors)


def parse_faces(text: str) -> list[FaceDescriptor]:
    """The descriptors of a ``faces`` column (empty: none); `BadDescriptor` if malformed."""
    text = text.strip()
    if not text:
        return []
    parts = text.split(";")
    if len(parts) > MAX_FACES:
        raise BadDescriptor(f"faces: at most {MAX_FACES} faces per entry")
    out = []
    for n, part in enumerate(parts, 1):
        fields = part.split()
        if len(fields) != 5:
            raise BadDescriptor(f"faces: face {n} must be 'x0 y0 x1 y1 <{CELLS * CELLS * 2} hex>'")
        try:
            box = tuple(float(v) for v in fields[:4])
        except ValueError:
            raise BadDescriptor(f"faces: face {n}'s box must be four numbers") from None
        if not (all(0.0 <= v <= 1.0 for v in box) and box[0] < box[2] and box[1] < box[3]):
            raise BadDescriptor(f"faces: face {n}'s box must be x0 < x1, y0 < y1 within 0..1")
        try:
            raw = bytes.fromhex(fields[4])
        except ValueError:
            raw = b""
        if len(raw) != CELLS * CELLS:
            raise BadDescriptor(f"faces: face {n}'s signature must be {CELLS * CELLS * 2}"
                                " hexadecimal digits")
        levels = np.frombuffer(raw, np.uint8).reshape(CELLS, CELLS).astype(np.float32)
        out.append(FaceDescriptor(box, (levels - 128) * STEP))
    return out


def format_windows(windows: list[str]) -> str:
    return " ".join(windows)


def parse_windows(text: str) -> list[str]:
    """The ``windows`` column: none, or the nine 95 % window hashes (`hashing.window_boxes`
    order), separated by spaces; `BadDescriptor` if malformed."""
    parts = text.split()
    if not parts:
        return []
    hashes = [parse_hash(p) for p in parts]
    if len(hashes) != 9 or None in hashes:
        raise BadDescriptor("windows: nine hashes of 64 hexadecimal digits, or nothing")
    return hashes


@dataclass
class Listed:
    """A hash-list entry as the face check sees it."""

    fp: Fingerprint  # its full hash and window hashes
    faces: list[FaceDescriptor]


def descriptor_difference(descriptor: FaceDescriptor, pixels: np.ndarray, box: Box) -> float:
    """How far ``pixels`` at ``box`` are from the descriptor: the face check's patch
    difference on 8x8 cells, at the best shift of up to ``SHIFT`` samples each way."""
    region = sample(pixels, box)
    k = CELLS // GRID
    best = np.inf
    for dy in range(2 * SHIFT + 1):
        for dx in range(2 * SHIFT + 1):
            cells = _cells(region[dy:dy + SAMPLE, dx:dx + SAMPLE])
            d = np.abs(cells - descriptor.cells).reshape(GRID, k, GRID, k).mean(axis=(1, 3))
            best = min(best, float(d.max()))
    return best


def _overlap(a: Box, b: Box) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    both = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    either = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - both
    return both / either if either > 0 else 0.0


def listed_difference(entry: Listed, query: Seen, entry_frame: Box, query_frame: Box
                      ) -> float | None:
    """The largest difference over the entry's faces, each compared with the same place in the
    looked-up image; infinite if a face of that image lies where no descriptor does; None if
    neither has a face in the frames."""
    worst = None
    for descriptor in entry.faces:
        if _inside(descriptor.box, entry_frame)[1] < MIN_INSIDE:
            continue  # cut off by the looked-up image's frame
        d = descriptor_difference(descriptor, query.pixels,
                                  map_box(descriptor.box, entry_frame, query_frame))
        worst = d if worst is None else max(worst, d)
    for face in query.faces:
        box, inside = _inside(face, query_frame)
        if inside < MIN_INSIDE:
            continue
        there = map_box(box, query_frame, entry_frame)
        if not any(_overlap(there, d.box) >= MIN_OVERLAP for d in entry.faces):
            return float("inf")  # a face the entry does not describe
    return worst


def listed_checks(entry: Listed, query: Seen, max_distance: int, window_max_distance: int
                  ) -> list[FaceCheck]:
    """`faces.face_checks` for a hash-list entry: the same frames, faces compared with the
    entry's descriptors."""
    meetings = meeting_frames(entry.fp, query.fp, max_distance, window_max_distance)
    alike = [m for m in meetings if same_framing(m[1], m[2])]
    tried = alike[:1] or meetings[:MAX_FRAMES_TRIED]
    if not tried or not entry.faces:  # no descriptor: only an image without a face matches
        diff = float("inf") if query.faces else None
        return [FaceCheck(d, diff, bool(alike), listed=True) for d, _, _ in tried[:1]]
    if query.pixels is None:
        return [FaceCheck(d, float("inf"), bool(alike), listed=True) for d, _, _ in tried[:1]]
    return [FaceCheck(d, listed_difference(entry, query, entry_frame, query_frame), bool(alike),
                      listed=True)
            for d, entry_frame, query_frame in tried]


def listed_distance(entry: Listed, query: Seen, max_distance: int, window_max_distance: int,
                    limits: Limits = Limits()) -> int | None:
    """The distance at which ``query`` is a copy of the entry's item, faces included, or None."""
    for check in listed_checks(entry, query, max_distance, window_max_distance):
        if check.passes(limits):
            return check.distance
    return None

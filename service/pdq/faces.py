"""Are the faces of two near-duplicate images the same faces?

PDQ sees an image as 64x64 grey levels, so a face swap, which keeps the frame (background, hair,
pose) and changes the face inside it, often stays within PDQ's threshold of the frame it was
made from. A decision must not follow such a copy: when two images' hashes meet, the frames
that met (`hashing.meeting_frames`) say where each part of one image lies in the other, and
every face found in either image (the detectors' face boxes, from the one face path in
`service.detection`) is compared with the same place in the other image.

Each face is sampled as a 32x32 grey patch (area-shrunk, then a light blur, so JPEG noise and a
halved copy look alike), normalised to zero mean and unit variance (a screenshot's brightness
and contrast change cancels out), and the two patches are lined up over a shift of up to two
samples each way (the frames are only as exact as a border trim or a 5 % window). The
*difference* is then the largest mean absolute difference over a 4x4 grid of blocks: a swapped
nose, mouth or pair of eyes moves its block, while a re-encode moves all of them a little.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.pdq.hashing import Box, Fingerprint, meeting_frames

SAMPLE = 32
SHIFT = 2
GRID = 4
BLUR_SIGMA = 0.8
#: the largest face difference at which two faces count as the same (bench.pdq_false_matches)
DEFAULT_MAX_FACE_DIFFERENCE = 0.2
#: a face with less than this share of its box inside the other image's frame is not compared
MIN_INSIDE = 0.6
#: frames tried, nearest first, when the faces of the nearest do not agree
MAX_FRAMES_TRIED = 3


def face_boxes(result: dict) -> list[Box]:
    """The detectors' face boxes of a check result, as fractions of the image's sides."""
    w, h = result.get("width") or 0, result.get("height") or 0
    if not w or not h:
        return []
    out = []
    for face in result.get("faces") or []:
        x, y, bw, bh = face["box"]
        out.append((x / w, y / h, (x + bw) / w, (y + bh) / h))
    return out


def map_box(box: Box, src: Box, dst: Box) -> Box:
    """A box of one image, given as fractions of its sides, in the other image, where the
    frame ``src`` of the first covers the same content as the frame ``dst`` of the second."""
    out = []
    for i, v in enumerate(box):
        a = i % 2
        u = (v - src[a]) / max(src[a + 2] - src[a], 1e-9)
        out.append(dst[a] + u * (dst[a + 2] - dst[a]))
    return tuple(out)


def _inside(box: Box, frame: Box) -> tuple[Box, float]:
    """``box`` clipped to ``frame``, and the share of its area that was inside."""
    x0, y0 = max(box[0], frame[0]), max(box[1], frame[1])
    x1, y1 = min(box[2], frame[2]), min(box[3], frame[3])
    area = max(box[2] - box[0], 1e-9) * max(box[3] - box[1], 1e-9)
    inside = max(0.0, x1 - x0) * max(0.0, y1 - y0) / area
    return (x0, y0, x1, y1), inside


def patch(grey: np.ndarray, box: Box, margin: int = SHIFT) -> np.ndarray:
    """The box of a grey image sampled on a (SAMPLE + 2 margin)² grid, ``margin`` samples beyond
    each side; blurred lightly."""
    h, w = grey.shape[:2]
    kx = max((box[2] - box[0]) * w / SAMPLE, 1e-3)  # image pixels per sample
    ky = max((box[3] - box[1]) * h / SAMPLE, 1e-3)
    src, fx, fy = grey, 1.0, 1.0
    if min(kx, ky) > 1.5:  # area-filter first, so the warp never aliases
        f = 1.25 / min(kx, ky)
        src = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))),
                         interpolation=cv2.INTER_AREA)
        fx, fy = src.shape[1] / w, src.shape[0] / h
    x0, y0 = box[0] * w - margin * kx, box[1] * h - margin * ky
    m = np.array([[kx * fx, 0.0, (x0 + 0.5 * kx) * fx - 0.5],
                  [0.0, ky * fy, (y0 + 0.5 * ky) * fy - 0.5]])
    n = SAMPLE + 2 * margin
    out = cv2.warpAffine(src.astype(np.float32), m, (n, n),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(out, (0, 0), BLUR_SIGMA)


def _normalised(p: np.ndarray) -> np.ndarray:
    return (p - p.mean()) / (p.std() + 1e-3)


def patch_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Difference of two patches sampled with ``SHIFT`` margins: the centre of ``a`` against
    ``b`` shifted by up to ``SHIFT`` samples each way, at the best shift."""
    core = _normalised(a[SHIFT:SHIFT + SAMPLE, SHIFT:SHIFT + SAMPLE])
    k = SAMPLE // GRID
    best = np.inf
    for dy in range(2 * SHIFT + 1):
        for dx in range(2 * SHIFT + 1):
            d = np.abs(core - _normalised(b[dy:dy + SAMPLE, dx:dx + SAMPLE]))
            best = min(best, float(d.reshape(GRID, k, GRID, k).mean(axis=(1, 3)).max()))
    return best


def grey(bgr: np.ndarray) -> np.ndarray:
    return bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def face_difference(item: np.ndarray, item_faces: list[Box], item_frame: Box,
                    query: np.ndarray, query_faces: list[Box], query_frame: Box) -> float | None:
    """The largest difference over the faces of both images, each compared with the same place
    in the other image (the two frames cover the same content); None if no face of either
    image lies in the frames, so there is no face to compare."""
    a, b = grey(item), grey(query)
    pairs = [(f, item_frame, query_frame, a, b) for f in item_faces]
    pairs += [(f, query_frame, item_frame, b, a) for f in query_faces]
    worst = None
    for box, own, other, mine, theirs in pairs:
        box, inside = _inside(box, own)
        if inside < MIN_INSIDE:
            continue  # cut off by the other image's frame: not in both images
        d = patch_difference(patch(mine, box), patch(theirs, map_box(box, own, other)))
        worst = d if worst is None else max(worst, d)
    return worst


def decode_thumbnail(data: bytes | None) -> np.ndarray | None:
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


@dataclass
class Seen:
    """What is known of one image: its PDQ fingerprint, its face boxes, its grey pixels (the
    stored thumbnail; None when none is at hand)."""

    fp: Fingerprint
    faces: list[Box]
    pixels: np.ndarray | None


def verified_distance(item: Seen, query: Seen, max_distance: int, window_max_distance: int,
                      max_face_difference: float = DEFAULT_MAX_FACE_DIFFERENCE) -> int | None:
    """The distance at which ``query`` is a copy of ``item``: their PDQ hashes meet (at the
    nearest frames whose faces agree) and every face of either image is the same in the other;
    None if they are not. Without faces in either image, the hashes alone decide."""
    meetings = meeting_frames(item.fp, query.fp, max_distance, window_max_distance)
    if not meetings or (not item.faces and not query.faces):
        return meetings[0][0] if meetings else None
    if item.pixels is None or query.pixels is None:
        return None  # faces that cannot be compared do not agree
    for d, item_frame, query_frame in meetings[:MAX_FRAMES_TRIED]:
        diff = face_difference(item.pixels, item.faces, item_frame,
                               query.pixels, query.faces, query_frame)
        if diff is None or diff <= max_face_difference:
            return d
    return None

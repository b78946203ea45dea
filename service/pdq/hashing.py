"""PDQ hashes of one image: what a check is looked up with, and what a flagged item is stored as.

PDQ survives re-encoding and resizing but not cropping or framing. Two additions cover the
copies moderators meet most:

* a *trimmed* hash, of the image with uniform borders cut off (a screenshot of an image shown
  on a plain page), computed for both the stored item and the image looked up;
* *window* hashes of the stored item only: nine windows of 95 % of each side (corners, edge
  middles, centre), so a copy cropped by 5 % still meets a hash of the same content.

Every hashed part of the image is a *frame*, a box in fractions of the image's width and height
(the whole image, the trimmed part, each window): when two images' hashes meet, their frames
cover the same content, which is how `service.pdq.faces` lines up their faces.

Cost: the borders are found line by line from each edge, stopping at the first line that is not
uniform; the image is shrunk once by halvings (`preprocess.shrink_fast`) to at most ``HASH_SIDE``
pixels, each frame of that copy is then shrunk to PDQ's own 64x64 working size (area filter; the
windows bilinear from a 128-px copy), and PDQ's own steps run on all of them at once
(`service.pdq.algorithm`): about 2 ms of CPU for a check's eleven frames
(`python -m bench.pdq_cost`).
Hashes are 64 hexadecimal characters (256 bits), as in ThreatExchange hash lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from service.detection.preprocess import shrink_fast
from service.pdq import algorithm

#: hashes of lower PDQ quality (flat or tiny images) are kept but never matched
DEFAULT_MIN_QUALITY = 50
WINDOW_SIDE = 0.95
#: a border counts as uniform when every pixel is this close to its corner's colour
TRIM_TOLERANCE = 6
#: thinner borders are left alone (JPEG noise at the edge is not a frame)
TRIM_MIN_PX = 3
#: larger images are shrunk (by halvings) to this side before their frames are cut and hashed
HASH_SIDE = 256
#: PDQ works on a 64x64 image; each frame is shrunk to it first (`pdq_input`)
PDQ_SIDE = 64
WHOLE = (0.0, 0.0, 1.0, 1.0)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of width and height


@dataclass
class Fingerprint:
    hash: str
    quality: int
    trimmed: str | None = None  # the hash without uniform borders, if the image had any
    windows: list[str] = field(default_factory=list)
    trim: Box | None = None  # where the trimmed part lies in the image

    def query_hashes(self) -> list[str]:
        """What the image is looked up with."""
        return [self.hash] + ([self.trimmed] if self.trimmed else [])

    def stored_hashes(self) -> list[str]:
        """What a flagged item is indexed under."""
        return list(dict.fromkeys([*self.query_hashes(), *self.windows]))

    def query_frames(self) -> list[tuple[str, Box]]:
        """(hash, frame) of what the image is looked up with."""
        out = [(self.hash, WHOLE)]
        if self.trimmed:
            out.append((self.trimmed, self.trim or WHOLE))
        return out

    def window_frames(self) -> list[tuple[str, Box]]:
        return list(zip(self.windows, window_boxes()))

    def public(self) -> dict:
        return {"hash": self.hash, "quality": self.quality, "trimmed": self.trimmed,
                "trim": list(self.trim) if self.trim else None}

    @classmethod
    def from_public(cls, pdq: dict, windows: list[str] = ()) -> "Fingerprint":
        trim = pdq.get("trim")
        return cls(pdq["hash"], int(pdq.get("quality") or 0), pdq.get("trimmed"), list(windows),
                   tuple(trim) if trim else None)


def pdq_input(bgr: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """A frame as PDQ hashes it here: shrunk to at most 64 pixels a side (area filter, or
    bilinear for a frame less than twice as large, which is then nearly as smooth and cheaper)."""
    h, w = bgr.shape[:2]
    if h > PDQ_SIDE or w > PDQ_SIDE:
        bgr = cv2.resize(bgr, (min(w, PDQ_SIDE), min(h, PDQ_SIDE)), interpolation=interpolation)
    return bgr


def _uniform_run(image: np.ndarray, ref: np.ndarray, axis: int, from_end: bool) -> int:
    """How many lines (rows for ``axis`` 0, columns for 1) from the image's start (or its end)
    have every pixel within the tolerance of ``ref`` in every channel.

    Looks at a few lines, then twice as many, and so on: a photo without borders costs one
    small block, not a pass over the image; a flat one costs one pass of ``cv2.inRange``."""
    n, start, step = image.shape[axis], 0, 4
    ref = np.asarray(ref, np.int16).reshape(-1)  # one value per channel
    lo = np.clip(ref - TRIM_TOLERANCE, 0, 255).astype(np.uint8)
    hi = np.clip(ref + TRIM_TOLERANCE, 0, 255).astype(np.uint8)
    while start < n:
        stop = min(n, start + step)
        span = slice(n - stop, n - start) if from_end else slice(start, stop)
        block = image[span] if axis == 0 else image[:, span]
        within = cv2.inRange(block, lo, hi).min(axis=1 - axis)  # 255: the whole line is
        if from_end:
            within = within[::-1]
        far = np.flatnonzero(within == 0)
        if far.size:
            return start + int(far[0])
        start, step = stop, step * 2
    return n


def _trim_once(image: np.ndarray) -> tuple[int, int, int, int]:
    first, last = image[0, 0], image[-1, -1]
    runs = (_uniform_run(image, first, 0, False), _uniform_run(image, last, 0, True),
            _uniform_run(image, first, 1, False), _uniform_run(image, last, 1, True))
    return tuple(n if n >= TRIM_MIN_PX else 0 for n in runs)


def trim_box(image: np.ndarray, passes: int = 4) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the image without uniform borders (a few passes: a title
    bar, then the page around the image), in pixels, or None if it has none worth cutting."""
    h, w = image.shape[:2]
    y0, y1, x0, x1 = 0, h, 0, w
    for _ in range(passes):
        top, bottom, left, right = _trim_once(image[y0:y1, x0:x1])
        if (top + bottom + left + right == 0 or top + bottom >= y1 - y0 - 8
                or left + right >= x1 - x0 - 8):
            break
        y0, y1, x0, x1 = y0 + top, y1 - bottom, x0 + left, x1 - right
    if (y0, y1, x0, x1) == (0, h, 0, w):
        return None
    if (y1 - y0) * 2 <= h or (x1 - x0) * 2 <= w:
        return None  # mostly "border": a flat image, not a framed one
    return y0, y1, x0, x1


def trim_borders(image: np.ndarray, passes: int = 4) -> np.ndarray | None:
    """The image without uniform borders, or None if it has none worth cutting."""
    box = trim_box(image, passes)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    return image[y0:y1, x0:x1]


def window_boxes(side: float = WINDOW_SIDE) -> list[Box]:
    """The nine windows as frames: corners, edge middles and centre, row by row."""
    m = 1.0 - side
    return [(fx * m, fy * m, fx * m + side, fy * m + side)
            for fy in (0.0, 0.5, 1.0) for fx in (0.0, 0.5, 1.0)]


def cut(image: np.ndarray, box: Box) -> np.ndarray:
    """The part of ``image`` inside a frame."""
    h, w = image.shape[:2]
    x0, y0 = min(w - 1, round(box[0] * w)), min(h - 1, round(box[1] * h))
    x1, y1 = max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))
    return image[y0:y1, x0:x1]


def windows(image: np.ndarray, side: float = WINDOW_SIDE) -> list[np.ndarray]:
    return [cut(image, box) for box in window_boxes(side)]


def frames(image: np.ndarray, *, with_windows: bool = True
           ) -> tuple[list[np.ndarray], Box | None]:
    """(the frames PDQ hashes, each at most 64 pixels a side: the whole image, the trimmed part
    if the image has uniform borders, the nine windows; where the trimmed part lies)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    small = shrink_fast(image, HASH_SIDE)
    out = [pdq_input(small)]
    trim = None
    box = trim_box(image)  # at full size: a shrunk copy blends a border into its neighbour
    if box is not None:
        y0, y1, x0, x1 = box
        h, w = image.shape[:2]
        trim = (x0 / w, y0 / h, x1 / w, y1 / h)
        out.append(pdq_input(cut(small, trim)))
    if with_windows:  # from a 128-px copy: each window is shrunk by less than 2 (bilinear)
        out += [pdq_input(win, cv2.INTER_LINEAR)
                for win in windows(shrink_fast(small, 2 * PDQ_SIDE))]
    return out, trim


def fingerprint(image: np.ndarray, *, with_windows: bool = True) -> Fingerprint:
    """PDQ hashes of a decoded BGR (or grey) image (CPU-bound: run it off the event loop)."""
    hashed, trim = frames(image, with_windows=with_windows)
    (full, quality), *rest = algorithm.compute(hashed)
    fp = Fingerprint(full, quality, trim=trim)
    if trim is not None:
        fp.trimmed = rest.pop(0)[0]
    fp.windows = [h for h, _ in rest]
    return fp


def distance(a: str, b: str) -> int:
    """Hamming distance between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def parse_hash(text: str) -> str | None:
    """A hash in canonical form (64 lowercase hex digits), or None if ``text`` is not one."""
    text = text.strip().lower()
    if len(text) != 64:
        return None
    try:
        int(text, 16)
    except ValueError:
        return None
    return text


def meeting_frames(item: Fingerprint, query: Fingerprint, max_distance: int,
                   window_max_distance: int) -> list[tuple[int, Box, Box]]:
    """Every (distance, item frame, query frame) at which the query's hashes meet the item's
    within the thresholds, nearest first."""
    found = []
    for qh, qbox in query.query_frames():
        for sh, sbox in item.query_frames():
            if (d := distance(qh, sh)) <= max_distance:
                found.append((d, sbox, qbox))
        for sh, sbox in item.window_frames():
            if (d := distance(qh, sh)) <= window_max_distance:
                found.append((d, sbox, qbox))
    return sorted(found)


def match_distance(item: Fingerprint, query: list[str], max_distance: int,
                   window_max_distance: int) -> int | None:
    """The distance at which an image looked up with ``query`` hashes meets a stored item, or
    None: the PDQ part of the rule the service applies (`service.moderation.near`)."""
    whole = [distance(q, s) for q in query for s in item.query_hashes()]
    windowed = [distance(q, s) for q in query for s in item.windows]
    found = [d for d in whole if d <= max_distance]
    found += [d for d in windowed if d <= window_max_distance]
    return min(found) if found else None

"""PDQ hashes of one image: what a check is looked up with, and what a flagged item is stored as.

PDQ survives re-encoding and resizing but not cropping or framing. Two additions cover the
copies moderators meet most:

* a *trimmed* hash, of the image with uniform borders cut off (a screenshot of an image shown
  on a plain page), computed for both the stored item and the image looked up;
* *window* hashes of the stored item only: nine windows of 95 % of each side (corners, edge
  middles, centre), so a copy cropped by 5 % still meets a hash of the same content.

Hashes are 64 hexadecimal characters (256 bits), as in ThreatExchange hash lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pdqhash

#: hashes of lower PDQ quality (flat or tiny images) are kept but never matched
DEFAULT_MIN_QUALITY = 50
WINDOW_SIDE = 0.95
#: a border counts as uniform when every pixel is this close to its corner's colour
TRIM_TOLERANCE = 6
#: thinner borders are left alone (JPEG noise at the edge is not a frame)
TRIM_MIN_PX = 3
#: larger images are shrunk (area filter) to this side before hashing: PDQ itself works at
#: 64x64, and the Jarosz filter it shrinks with costs time in proportion to the pixels
HASH_SIDE = 512


@dataclass
class Fingerprint:
    hash: str
    quality: int
    trimmed: str | None = None  # the hash without uniform borders, if the image had any
    windows: list[str] = field(default_factory=list)

    def query_hashes(self) -> list[str]:
        """What the image is looked up with."""
        return [self.hash] + ([self.trimmed] if self.trimmed else [])

    def stored_hashes(self) -> list[str]:
        """What a flagged item is indexed under."""
        return list(dict.fromkeys([*self.query_hashes(), *self.windows]))

    def public(self) -> dict:
        return {"hash": self.hash, "quality": self.quality, "trimmed": self.trimmed}


def _shrink(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    if max(h, w) <= HASH_SIDE:
        return bgr
    f = HASH_SIDE / max(h, w)
    return cv2.resize(bgr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def _pdq(bgr: np.ndarray) -> tuple[str, int]:
    rgb = np.ascontiguousarray(cv2.cvtColor(_shrink(bgr), cv2.COLOR_BGR2RGB))
    bits, quality = pdqhash.compute(rgb)
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def _uniform_run(lines: np.ndarray, ref: np.ndarray) -> int:
    """How many leading lines (rows of pixels) are all within the tolerance of ``ref``."""
    far = (np.abs(lines - ref) > TRIM_TOLERANCE).any(axis=(1, 2))
    hits = np.flatnonzero(far)
    return int(hits[0]) if hits.size else len(lines)


def _trim_once(image: np.ndarray) -> tuple[int, int, int, int]:
    g = image.astype(np.int16)
    cols = g.transpose(1, 0, 2)
    runs = (_uniform_run(g, g[0, 0]), _uniform_run(g[::-1], g[-1, -1]),
            _uniform_run(cols, g[0, 0]), _uniform_run(cols[::-1], g[-1, -1]))
    return tuple(n if n >= TRIM_MIN_PX else 0 for n in runs)


def trim_borders(image: np.ndarray, passes: int = 4) -> np.ndarray | None:
    """The image without uniform borders (a few passes: a title bar, then the page around the
    image), or None if it has none worth cutting."""
    h, w = image.shape[:2]
    inner = image
    for _ in range(passes):
        top, bottom, left, right = _trim_once(inner)
        ih, iw = inner.shape[:2]
        if top + bottom + left + right == 0 or top + bottom >= ih - 8 or left + right >= iw - 8:
            break
        inner = inner[top:ih - bottom, left:iw - right]
    if inner is image:
        return None
    if inner.shape[0] * 2 <= h or inner.shape[1] * 2 <= w:
        return None  # mostly "border": a flat image, not a framed one
    return inner


def windows(image: np.ndarray, side: float = WINDOW_SIDE) -> list[np.ndarray]:
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * side)), max(1, round(w * side))
    out = []
    for fy in (0.0, 0.5, 1.0):
        for fx in (0.0, 0.5, 1.0):
            y, x = round((h - ch) * fy), round((w - cw) * fx)
            out.append(image[y:y + ch, x:x + cw])
    return out


def fingerprint(image: np.ndarray, *, with_windows: bool = True) -> Fingerprint:
    """PDQ hashes of a decoded BGR image (CPU-bound: run it off the event loop)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    full, quality = _pdq(image)
    inner = trim_borders(image)
    fp = Fingerprint(full, quality, _pdq(inner)[0] if inner is not None else None)
    if with_windows:
        fp.windows = [_pdq(win)[0] for win in windows(image)]
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


def match_distance(item: Fingerprint, query: list[str], max_distance: int,
                   window_max_distance: int) -> int | None:
    """The distance at which an image looked up with ``query`` hashes meets a stored item, or
    None: the rule the index applies (`service.moderation.near`), without an index."""
    whole = [distance(q, s) for q in query for s in item.query_hashes()]
    windowed = [distance(q, s) for q in query for s in item.windows]
    found = [d for d in whole if d <= max_distance]
    found += [d for d in windowed if d <= window_max_distance]
    return min(found) if found else None

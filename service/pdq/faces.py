"""Are the faces of two near-duplicate images the same faces?

PDQ sees an image as 64x64 grey levels, so a face swap, which keeps the frame (background, hair,
pose) and changes the face inside it, often stays within PDQ's threshold of the frame it was
made from. A decision must not follow such a copy: when two images' hashes meet, the frames
that met (`hashing.meeting_frames`) say where each part of one image lies in the other, an
affine fit of the two frames' pixels (`Registration`) refines that, and every face found in
either image (the detectors' face boxes, from the one face path in `service.detection`) is
compared with the same place in the other image, on the two stored thumbnails. Where no face was
found in either image, the whole parts that met are compared the same way, as one face: the face
finder can miss the face of a video frame and of the swap made from it alike.

Each face is sampled as a 32x32 grey patch (area-shrunk, then a light blur, so JPEG noise and a
halved copy look alike), normalised to zero mean and unit variance (a screenshot's brightness
and contrast change cancels out; a flat patch is not stretched), and the two patches are lined
up over a shift of up to two samples each way. The *difference* is the largest mean absolute
difference over a 4x4 grid of blocks: a swapped nose, mouth or pair of eyes moves its block,
while a re-encode moves all of them a little. Images framed alike (re-encodes, resizes) must
agree to within encoding noise; reframed copies (crops, screenshots) get a wider limit, as
resampling adds its own. Both limits come from `bench.pdq_false_matches`.

The faces are also compared at the thumbnails' own resolution, where the 32x32 patches see only
coarser detail: the *fine difference* is the largest grey-level difference in a face after a
Gaussian low-pass of ``FINE_SIGMA`` pixels. Two whole images framed alike are compared pixel for
pixel (the larger shrunk to the smaller; less the face's median difference, a brightness change):
a JPEG q50 re-encode stays under ~5 levels there, while a "face swap" that left the face as it
was but came from another encode of the video (DFDC has a few) differs by 7-8. Reframed copies
(crops, screenshots) are compared after warping the item's thumbnail onto the copy's by the
registration and fitting the copy's brightness and contrast in each face: resampling keeps them
under ~10 levels, while a swap that changed a patch beside the nose, too small to move a block
of the 32x32 patches beyond a screenshot's noise, differs by ~27.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.pdq.hashing import WHOLE, Box, Fingerprint, meeting_frames

SAMPLE = 32
SHIFT = 2
GRID = 4
BLUR_SIGMA = 0.8
#: the largest face differences at which two faces count as the same, for images framed alike
#: and for reframed copies (crops, screenshots): measured by bench.pdq_false_matches
DEFAULT_MAX_FACE_DIFFERENCE_SAME_FRAMING = 0.03
DEFAULT_MAX_FACE_DIFFERENCE = 0.1
#: the same two limits for a hash-list entry's faces, compared as 8x8 cells
#: (`service.pdq.descriptors`): measured by bench.pdq_false_matches
DEFAULT_MAX_LISTED_DIFFERENCE_SAME_FRAMING = 0.03
DEFAULT_MAX_LISTED_DIFFERENCE = 0.06
#: frames whose sides lie this close (a fraction of the image) are the same framing
SAME_FRAMING = 0.01
#: a face with less than this share of its box inside the other image's frame is not compared
MIN_INSIDE = 0.6
#: the least standard deviation (grey levels) a patch is normalised by
MIN_SPREAD = 10.0
#: faces are compared this far (a fraction of the frame) inside the frames' edges
INSET = 0.06
#: frames tried, nearest first, when the faces of the nearest do not agree
MAX_FRAMES_TRIED = 3
#: the low-pass (Gaussian sigma, thumbnail pixels) of the fine difference
FINE_SIGMA = 2.0
#: the largest fine difference (grey levels) of two whole images framed alike:
#: measured by bench.pdq_false_matches
DEFAULT_MAX_FINE_DIFFERENCE = 5.0
#: ... and of reframed copies (registered, resampled): measured by bench.pdq_false_matches
DEFAULT_MAX_FINE_DIFFERENCE_REFRAMED = 15.0


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
    """``box`` clipped to ``frame`` less an ``INSET`` band along its edges, and the share of
    its area that was inside (near the edges, one image shows its border or the page around it
    where the other shows more of itself)."""
    ix, iy = INSET * (frame[2] - frame[0]), INSET * (frame[3] - frame[1])
    x0, y0 = max(box[0], frame[0] + ix), max(box[1], frame[1] + iy)
    x1, y1 = min(box[2], frame[2] - ix), min(box[3], frame[3] - iy)
    area = max(box[2] - box[0], 1e-9) * max(box[3] - box[1], 1e-9)
    inside = max(0.0, x1 - x0) * max(0.0, y1 - y0) / area
    return (x0, y0, x1, y1), inside


def sample(grey: np.ndarray, box: Box, n: int = SAMPLE, margin: int = SHIFT) -> np.ndarray:
    """The box of a grey image sampled on an (n + 2 margin)² grid, ``margin`` samples beyond
    each side, lightly blurred (float32)."""
    h, w = grey.shape[:2]
    kx = max((box[2] - box[0]) * w / n, 1e-3)  # image pixels per sample
    ky = max((box[3] - box[1]) * h / n, 1e-3)
    src, fx, fy = grey, 1.0, 1.0
    if min(kx, ky) > 1.5:  # area-filter first, so the warp never aliases
        f = 1.25 / min(kx, ky)
        src = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))),
                         interpolation=cv2.INTER_AREA)
        fx, fy = src.shape[1] / w, src.shape[0] / h
    x0, y0 = box[0] * w - margin * kx, box[1] * h - margin * ky
    m = np.array([[kx * fx, 0.0, (x0 + 0.5 * kx) * fx - 0.5],
                  [0.0, ky * fy, (y0 + 0.5 * ky) * fy - 0.5]])
    size = n + 2 * margin
    out = cv2.warpAffine(src.astype(np.float32), m, (size, size),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(out, (0, 0), BLUR_SIGMA)


class Registration:
    """Where each part of one image's frame lies in the other's: the frames' own mapping,
    refined by an affine fit of the two frames' pixels (`cv2.findTransformECC` on 128-px copies),
    since a trimmed border or a 5 % window is only about where the other image's edge lies."""

    SIDE = 128
    MAX_CHANGE = 0.12  # a fit that moves the frame more than this (fraction of it) is not trusted

    def __init__(self, a: np.ndarray, frame_a: Box, b: np.ndarray, frame_b: Box):
        self.frame_a, self.frame_b = frame_a, frame_b
        n = self.SIDE
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, fitted = cv2.findTransformECC(
                sample(a, frame_a, n, 0), sample(b, frame_b, n, 0), warp.copy(),
                cv2.MOTION_AFFINE, (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-4),
                None, 3)
            corners = np.array([[0, 0, 1], [n, 0, 1], [0, n, 1], [n, n, 1]], np.float32)
            moved = np.abs(corners @ fitted.T - corners[:, :2]).max() / n
            if np.isfinite(fitted).all() and moved <= self.MAX_CHANGE:
                warp = fitted
        except cv2.error:
            pass  # the fit did not converge: the frames' own mapping stands
        self.forward = warp.astype(np.float64)  # a's frame samples -> b's frame samples
        self.backward = cv2.invertAffineTransform(self.forward)

    def _map(self, box: Box, src: Box, dst: Box, warp: np.ndarray) -> Box:
        n = self.SIDE
        xs = [(x - src[0]) / max(src[2] - src[0], 1e-9) * n for x in (box[0], box[2])]
        ys = [(y - src[1]) / max(src[3] - src[1], 1e-9) * n for y in (box[1], box[3])]
        pts = np.array([[x, y, 1.0] for x in xs for y in ys]) @ warp.T
        u0, v0 = pts.min(0) / n
        u1, v1 = pts.max(0) / n
        sx, sy = dst[2] - dst[0], dst[3] - dst[1]
        return (dst[0] + u0 * sx, dst[1] + v0 * sy, dst[0] + u1 * sx, dst[1] + v1 * sy)

    def a_to_b(self, box: Box) -> Box:
        return self._map(box, self.frame_a, self.frame_b, self.forward)

    def b_to_a(self, box: Box) -> Box:
        return self._map(box, self.frame_b, self.frame_a, self.backward)


def _normalised(p: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance; a flat patch is not stretched beyond ``MIN_SPREAD`` grey levels,
    so its noise does not pass for detail."""
    return (p - p.mean()) / max(float(p.std()), MIN_SPREAD)


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
                    query: np.ndarray, query_faces: list[Box], query_frame: Box,
                    reg: Registration | None = None) -> float | None:
    """The largest difference over the faces of both images, each compared with the same place
    in the other image (the two frames cover the same content); None if no face of either
    image lies in the frames, so there is no face to compare."""
    a, b = grey(item), grey(query)
    reg = reg or Registration(a, item_frame, b, query_frame)
    pairs = [(f, item_frame, reg.a_to_b, a, b) for f in item_faces]
    pairs += [(f, query_frame, reg.b_to_a, b, a) for f in query_faces]
    worst = None
    for box, own, to_other, mine, theirs in pairs:
        box, inside = _inside(box, own)
        if inside < MIN_INSIDE:
            continue  # cut off by the other image's frame: not in both images
        d = patch_difference(sample(mine, box), sample(theirs, to_other(box)))
        worst = d if worst is None else max(worst, d)
    return worst


def fine_difference(a: np.ndarray, a_faces: list[Box], b: np.ndarray, b_faces: list[Box]
                    ) -> float | None:
    """The fine difference of two whole grey images framed alike over the faces of both (the
    module's docstring); None if no face lies inside the images' inset."""
    if a.shape != b.shape:  # a resized copy: compare at the smaller size
        small, large = (a, b) if a.size <= b.size else (b, a)
        large = cv2.resize(large, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
        a, b = small, large
    diff = cv2.GaussianBlur(a.astype(np.float32) - b.astype(np.float32), (0, 0), FINE_SIGMA)
    worst = None
    for face in [*a_faces, *b_faces]:
        box, inside = _inside(face, WHOLE)
        if inside < MIN_INSIDE:
            continue
        region = diff[_pixels(box, diff.shape)]
        d = float(np.abs(region - np.median(region)).max())
        worst = d if worst is None else max(worst, d)
    return worst


def _pixels(box: Box, shape) -> tuple[slice, slice]:
    h, w = shape[:2]
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = max(x0 + 1, int(np.ceil(box[2] * w))), max(y0 + 1, int(np.ceil(box[3] * h)))
    return slice(y0, y1), slice(x0, x1)


def _samples_to_pixels(frame: Box, shape, n: int) -> np.ndarray:
    """3x3: sample coordinates of a frame sampled n x n (as `sample` does) to pixel ones."""
    h, w = shape[:2]
    kx, ky = (frame[2] - frame[0]) * w / n, (frame[3] - frame[1]) * h / n
    return np.array([[kx, 0.0, frame[0] * w + 0.5 * kx - 0.5],
                     [0.0, ky, frame[1] * h + 0.5 * ky - 0.5], [0.0, 0.0, 1.0]])


def registered_fine_difference(a: np.ndarray, a_faces: list[Box], b: np.ndarray,
                               b_faces: list[Box], reg: Registration) -> float | None:
    """The fine difference of a reframed pair (the module's docstring): ``a`` warped onto
    ``b``'s pixels, fitted to its brightness and contrast in each face of either image that
    lies inside ``b``'s frame; None if none does."""
    n = reg.SIDE
    warp = np.vstack([reg.forward, [0.0, 0.0, 1.0]])
    m = (_samples_to_pixels(reg.frame_b, b.shape, n) @ warp
         @ np.linalg.inv(_samples_to_pixels(reg.frame_a, a.shape, n)))  # a's pixels -> b's
    src = a.astype(np.float32)
    scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    if scale < 0.8:  # shrunk onto b: area-filter first, so the warp never aliases
        src = cv2.resize(src, (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
        rx, ry = a.shape[1] / src.shape[1], a.shape[0] / src.shape[0]
        m = m @ np.array([[rx, 0.0, 0.5 * rx - 0.5], [0.0, ry, 0.5 * ry - 0.5], [0.0, 0.0, 1.0]])
    warped = cv2.warpAffine(src, m[:2], (b.shape[1], b.shape[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    worst = None
    for face in [*(reg.a_to_b(f) for f in a_faces), *b_faces]:
        box, inside = _inside(face, reg.frame_b)
        if inside < MIN_INSIDE:
            continue
        where = _pixels(box, b.shape)
        theirs, mine = b[where].astype(np.float32), warped[where]
        fit = np.linalg.lstsq(np.stack([mine.ravel(), np.ones(mine.size, np.float32)], 1),
                              theirs.ravel(), rcond=None)[0]
        diff = cv2.GaussianBlur(theirs - (mine * fit[0] + fit[1]), (0, 0), FINE_SIGMA)
        d = float(np.abs(diff).max())
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


def same_framing(a: Box, b: Box) -> bool:
    """Whether two frames are the same part of their images (both whole, or trimmed alike)."""
    return all(abs(x - y) <= SAME_FRAMING for x, y in zip(a, b))


@dataclass(frozen=True)
class FaceCheck:
    distance: int  # PDQ distance at the frames that met
    difference: float | None  # the faces' (None: no face to compare)
    same_framing: bool  # the frames are the same part of each image
    listed: bool = False  # faces compared with a hash-list entry's descriptors
    fine: float | None = None  # the fine difference (None: not measured)
    fine_aligned: bool = False  # ... of two whole images framed alike (else registered)
    whole: bool = False  # no face in either image: the whole frames compared as one face

    def passes(self, limits: "Limits") -> bool:
        if self.difference is None:
            return True
        if self.listed:
            limit = limits.listed_same_framing if self.same_framing else limits.listed_reframed
        else:
            limit = limits.same_framing if self.same_framing else limits.reframed
            fine_limit = limits.fine if self.fine_aligned else limits.fine_reframed
            if self.fine is not None and self.fine > fine_limit:
                return False
        return self.difference <= limit


@dataclass(frozen=True)
class Limits:
    """Largest face differences at which two faces count as the same: for images framed alike
    (re-encodes, resizes; only encoding noise remains) and for reframed ones (crops,
    screenshots; the registration and resampling add their own); and the same two for a
    hash-list entry's face descriptors."""

    same_framing: float = DEFAULT_MAX_FACE_DIFFERENCE_SAME_FRAMING
    reframed: float = DEFAULT_MAX_FACE_DIFFERENCE
    listed_same_framing: float = DEFAULT_MAX_LISTED_DIFFERENCE_SAME_FRAMING
    listed_reframed: float = DEFAULT_MAX_LISTED_DIFFERENCE
    fine: float = DEFAULT_MAX_FINE_DIFFERENCE
    fine_reframed: float = DEFAULT_MAX_FINE_DIFFERENCE_REFRAMED


def face_checks(item: Seen, query: Seen, max_distance: int, window_max_distance: int
                ) -> list[FaceCheck]:
    """The face comparisons a match is judged by: empty if the hashes do not meet. If the two
    images are framed alike (their whole or trimmed frames meet), only the nearest such
    meeting counts, since nothing but encoding noise may then differ; otherwise the nearest
    ``MAX_FRAMES_TRIED`` meetings."""
    meetings = meeting_frames(item.fp, query.fp, max_distance, window_max_distance)
    alike = [m for m in meetings if same_framing(m[1], m[2])]
    tried = alike[:1] or meetings[:MAX_FRAMES_TRIED]
    faceless = not item.faces and not query.faces
    if not tried or (faceless and (item.pixels is None or query.pixels is None)):
        return [FaceCheck(d, None, bool(alike)) for d, _, _ in tried[:1]]
    if item.pixels is None or query.pixels is None:  # faces that cannot be compared
        return [FaceCheck(d, float("inf"), bool(alike)) for d, _, _ in tried[:1]]
    a, b = grey(item.pixels), grey(query.pixels)
    out = []
    for d, item_frame, query_frame in tried:
        # No face found in either image (the face finder can miss one, in both a frame and
        # the swap made from it): the whole part that met is compared as one face would be.
        item_faces = [item_frame] if faceless else item.faces
        reg = Registration(a, item_frame, b, query_frame)
        difference = face_difference(a, item_faces, item_frame, b, query.faces, query_frame, reg)
        aligned = item_frame == WHOLE and query_frame == WHOLE
        fine = None
        if difference is not None:
            fine = (fine_difference(a, item_faces, b, query.faces) if aligned
                    else registered_fine_difference(a, item_faces, b, query.faces, reg))
        out.append(FaceCheck(d, difference, bool(alike), fine=fine, fine_aligned=aligned,
                             whole=faceless))
    return out


def verified_distance(item: Seen, query: Seen, max_distance: int, window_max_distance: int,
                      limits: Limits = Limits()) -> int | None:
    """The distance at which ``query`` is a copy of ``item``: their PDQ hashes meet, at frames
    where every face of either image is the same in the other; None if they are not."""
    for check in face_checks(item, query, max_distance, window_max_distance):
        if check.passes(limits):
            return check.distance
    return None

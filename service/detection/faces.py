"""Face finding with MediaPipe BlazeFace (ONNX, converted by `model_export.blazeface`).

Two passes share one decoder: the short-range model (128 px) on the whole image, letterboxed, finds
faces that fill a good part of the picture; the 256-px "back" model (trained on faces further
from the camera) on the same letterboxed image finds the small faces of group and street photos.
Large images are additionally cut into overlapping tiles for the 256-px model so that faces of a
few dozen pixels in a 1024-px photo are still found. The anchor decoding and the weighted
non-maximum suppression follow MediaPipe's published graph options (SSD anchors with fixed size,
``TensorsToDetections`` box/keypoint scales, ``NonMaxSuppression`` in weighted mode); they are
written here, so no TensorFlow is needed at run time.

A face is a `Face`: score, box (x, y, w, h) and six keypoints in image pixels: the eyes (the
person's right eye first, i.e. the one on the image's left for a frontal face), the nose tip, the
mouth centre and the two ear tragions.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# preprocess sets OPENCV_IO_MAX_IMAGE_PIXELS before OpenCV is first imported where it can
from service.detection import preprocess

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
CARD_FILE = "blazeface.card.json"
MAX_FACES = 16


@dataclass(frozen=True)
class Face:
    score: float
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels
    keypoints: np.ndarray = field(compare=False)  # (6, 2) x, y in image pixels

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.keypoints[0], self.keypoints[1]

    def int_box(self) -> tuple[int, int, int, int]:
        return tuple(int(round(v)) for v in self.box)


def ssd_anchors(input_size: int, strides: list[int], per_cell: list[int]) -> np.ndarray:
    """Anchor centres (n, 2) in 0..1: for each stride, ``per_cell`` anchors at each cell centre."""
    out = []
    for stride, k in zip(strides, per_cell):
        g = int(np.ceil(input_size / stride))
        ys, xs = np.mgrid[0:g, 0:g]
        c = np.stack([(xs + 0.5) / g, (ys + 0.5) / g], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, k, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


class _Model:
    """One BlazeFace ONNX file with its anchors and decoding settings (from the card)."""

    def __init__(self, models_dir: Path, spec: dict, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(models_dir / spec["file"]), so, providers=["CPUExecutionProvider"])
        self.size = int(spec["input_size"])
        self.min_score = float(spec["min_score"])
        self.anchors = ssd_anchors(self.size, spec["anchor_strides"], spec["anchors_per_cell"])
        self.input_name = self.session.get_inputs()[0].name
        self.lock = threading.Lock()

    def detect(self, square_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores (n,), boxes (n, 4) as x0, y0, x1, y1 and keypoints (n, 6, 2), all in 0..1."""
        x = square_rgb.astype(np.float32) * (2.0 / 255.0) - 1.0
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        reg, cls = self.session.run(None, {self.input_name: x})
        reg, cls = reg[0], cls[0, :, 0]
        keep = cls > np.log(self.min_score / (1.0 - self.min_score))  # sigmoid(cls) > min_score
        if not keep.any():
            return np.zeros(0), np.zeros((0, 4)), np.zeros((0, 6, 2))
        reg, cls, anc = reg[keep] / self.size, cls[keep], self.anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(cls, -100, 100)))
        cx, cy = reg[:, 0] + anc[:, 0], reg[:, 1] + anc[:, 1]
        w, h = reg[:, 2], reg[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        return scores, boxes, kps


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (4,) with boxes ``b`` (n, 4), x0 y0 x1 y1."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda r: np.clip(r[..., 2] - r[..., 0], 0, None) * np.clip(r[..., 3] - r[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def _contained(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box ``a``'s area that lies inside box ``b`` (x0 y0 x1 y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


def weighted_nms(scores, boxes, kps, iou_threshold: float):
    """MediaPipe's weighted NMS: each cluster of overlapping detections becomes their
    score-weighted mean (box and keypoints), with the best score of the cluster."""
    order = np.argsort(-scores)
    scores, boxes, kps = scores[order], boxes[order], kps[order]
    out = []
    remaining = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        members = remaining & (_iou(boxes[i], boxes) > iou_threshold)
        members[i] = True
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kp = (kps[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((float(scores[i]), box, kp))
        remaining &= ~members
    return out


def _letterbox(image: np.ndarray, size: int, margin: float = 0.0) -> tuple[np.ndarray, float, int, int]:
    """Image scaled into a size x size square, centred, black padding: (square, scale, dx, dy).

    ``margin`` (a share of the longer side) adds that much black border on every side first, as
    if the image had been padded before being letterboxed, without padding the full-size image.
    """
    h, w = image.shape[:2]
    scale = size / (max(h, w) * (1.0 + 2.0 * margin))
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((size, size, 3), np.uint8)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    out[dy:dy + nh, dx:dx + nw] = small
    return out, scale, dx, dy


class FaceFinder:
    """BlazeFace short-range + back (+ tiles for large images), thread-safe."""

    def __init__(self, models_dir: Path = MODELS_DIR, threads: int = 1):
        self.card = json.loads((Path(models_dir) / CARD_FILE).read_text())
        d = self.card["detection"]
        self.models = {k: _Model(Path(models_dir), v, threads) for k, v in self.card["models"].items()}
        self.iou = float(d["nms_iou"])
        self.tile_min_side = int(d["tile_min_side"])
        self.tile_side = int(d["tile_side"])
        self.max_containment = float(d["max_containment"])
        self.back_min_side = int(d["back_min_side"])
        self.short_margin = float(d["short_margin"])
        self.back_skip_share = float(d.get("back_skip_share", 1e9))
        # the confirmation pass (`_confirmed`); a card without it finds faces in one pass
        self.confirm = None
        if "confirm_face_scale" in d:
            size = self.models["short"].size
            self.confirm = preprocess.InputSpec(
                face_scale=float(d["confirm_face_scale"]), eye_y=float(d["confirm_eye_y"]),
                min_face=0, face_size=size, input_size=size, crops=((0.5, 0.5),),
                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
            self.confirm_min_score = float(d["confirm_min_score"])
            self.confirm_max_offset = float(d["confirm_max_offset"])
            self.confirm_below = float(d.get("confirm_below_score", 1.0))

    def _run(self, name: str, bgr: np.ndarray, ox: float = 0.0, oy: float = 0.0,
             margin: float = 0.0, shrunk: float = 1.0):
        """One model on the letterboxed image: scores, boxes (x0 y0 x1 y1), keypoints, in the
        image's pixels (shifted by ``ox``, ``oy``). ``bgr`` may be a copy of the image shrunk by
        ``shrunk``; the answer is in the original image's pixels."""
        m = self.models[name]
        square, scale, dx, dy = _letterbox(bgr, m.size, margin)
        scale *= shrunk
        with m.lock:  # one session run at a time per model: the sessions have one thread each
            s, b, k = m.detect(cv2.cvtColor(square, cv2.COLOR_BGR2RGB))
        b = (b * m.size - [dx, dy, dx, dy]) / scale + [ox, oy, ox, oy]
        k = (k * m.size - [dx, dy]) / scale + [ox, oy]
        return s, b, k

    def find(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces, most confident first (at most MAX_FACES)."""
        h, w = image_bgr.shape[:2]
        # The short-range model places keypoints well when the face has some margin around it:
        # it sees the image with a black border of `short_margin` of its longer side (a tight
        # crop, where the face fills the picture, is then framed like its training faces).
        # Both whole-image passes see one shrunk copy (the larger model's input side): shrinking
        # a large photo once costs less than letterboxing it twice.
        side = max(m.size for m in self.models.values())
        view = preprocess.shrink_fast(image_bgr, side)
        f = 1.0 if view is image_bgr else side / max(h, w)
        # The short-range model places keypoints well when the face has some margin around it:
        # it sees the image with a black border of `short_margin` of its longer side (a tight
        # crop, where the face fills the picture, is then framed like its training faces).
        short = self._nms(*self._run("short", view, margin=self.short_margin, shrunk=f))
        # The back model adds the faces too small for the short one; where both found a face,
        # the short model's box and keypoints are kept (the back model's keypoints drift on
        # large faces). A portrait (a face the first pass is sure of, `confirm_below_score`, of
        # `back_skip_share` of the longer side or more) is not searched for further, smaller
        # faces: that halves the finder's time on most photos. In a group photo the short model
        # at its coarse scale may put one unsure box around several people: that is no portrait,
        # and the faces inside it are still sought.
        small = []
        sure = self.confirm_below if self.confirm is not None else 0.0
        portrait = any(s >= sure and max(b[2] - b[0], b[3] - b[1]) >= self.back_skip_share * max(h, w)
                       for s, b, _ in short)
        if max(h, w) >= self.back_min_side and not portrait:
            parts = [self._run("back", view, shrunk=f)]
            if max(h, w) >= self.tile_min_side and min(h, w) >= MIN_TILED_SIDE:
                parts += [self._run("back", image_bgr[y:y + t, x:x + t], x, y)
                          for x, y, t in tiles(w, h, self.tile_side)]
            back = self._nms(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
            small = [d for d in back if not any(
                _iou(d[1], np.asarray([o[1]]))[0] > self.iou
                or (_contained(d[1], o[1]) > 0.5 and o[0] >= sure)
                or _contained(o[1], d[1]) > 0.5 for o in short)]
        found = sorted(short + small, key=lambda d: -d[0])
        faces, kept = [], []
        for score, box, kp in found:
            if any(_contained(box, other) > self.max_containment for other in kept):
                continue  # a face inside a more confident face is a part of it (an eye, a cheek)
            if any(_contained(np.asarray(f.box[:2] + (f.box[0] + f.box[2], f.box[1] + f.box[3])),
                              box) > self.max_containment for f in faces):
                continue  # a box around a more confident, confirmed face: a group's outline
            kept.append(box)
            x0, y0 = max(0.0, box[0]), max(0.0, box[1])
            x1, y1 = min(float(w), box[2]), min(float(h), box[3])
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            if len(faces) < MAX_FACES and self._confirmed(image_bgr, kp, score):
                faces.append(Face(score, (x0, y0, x1 - x0, y1 - y0), kp.astype(np.float32)))
        return faces

    def _confirmed(self, image_bgr: np.ndarray, keypoints: np.ndarray, score: float) -> bool:
        """Is it a face? Unless the first pass was sure (``confirm_below_score``), the
        short-range model must find it again, centred, in a square aligned on its keypoints,
        with the face framed the way that model finds faces best (about a quarter of the side).
        A face is found again; a round thing that the first pass took for one (a cup, a cat, a
        logo) rarely is (`models/blazeface.card.json`, images without faces)."""
        if self.confirm is None or score >= self.confirm_below:
            return True
        m = self.models["short"]
        square, _ = preprocess.align_face(image_bgr, keypoints, self.confirm)
        with m.lock:
            s, b, _ = m.detect(cv2.cvtColor(square, cv2.COLOR_BGR2RGB))
        if not len(s):
            return False
        centre = (b[:, :2] + b[:, 2:]) / 2.0
        near = np.hypot(centre[:, 0] - 0.5, centre[:, 1] - 0.5) < self.confirm_max_offset
        return bool((near & (s >= self.confirm_min_score)).any())

    def _nms(self, s, b, k):
        return weighted_nms(s, b, k, self.iou) if len(s) else []


#: tiles are never smaller than this (a narrow strip's tiles overhang it, and are letterboxed like
#: any image): tiles of the strip's own width would be one per few of its pixels
MIN_TILE_SIDE = 128
#: nor more than this many: a 40-MP photo (the decoder's limit) takes 16 x 10; beyond, the
#: tiles grow (a 64 x 600,000 strip)
MAX_TILES = 256
#: an image whose shorter side is less than this holds no face worth tiles (a banner, a rule)
MIN_TILED_SIDE = 32


def tiles(w: int, h: int, side: int) -> list[tuple[int, int, int]]:
    """Overlapping square tiles (x, y, side) covering a w x h image (overlap >= a quarter tile):
    of ``side``, or the image's shorter side if less (at least ``MIN_TILE_SIDE``; a tile may
    reach past the image), and larger where more than ``MAX_TILES`` would be needed."""
    side = max(min(side, w, h), min(MIN_TILE_SIDE, max(w, h)))
    while True:
        out = [(x, y, side) for y in _starts(h, side) for x in _starts(w, side)]
        if len(out) <= MAX_TILES:
            return out
        side *= 2


def _starts(length: int, side: int) -> list[int]:
    if length <= side:
        return [0]
    n = int(np.ceil((length - side) / (0.75 * side))) + 1
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


_default: FaceFinder | None = None
_default_lock = threading.Lock()


def default_finder() -> FaceFinder:
    """The finder over the shipped `models/` files (loaded once per process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceFinder()
        return _default


def find_faces(image_bgr: np.ndarray) -> list[Face]:
    return default_finder().find(image_bgr)

"""Image preprocessing shared by training (`model_export/`) and serving (`service/`).

Every number that shapes a model's input (margin around a face, face size, crop size, crop
positions, normalisation) comes from the model card, so training and serving cannot drift apart.
The card keys used here are documented in `CARD_KEYS`.

The ``service`` package sets ``OPENCV_IO_MAX_IMAGE_PIXELS`` before OpenCV is imported, so that a
decompression bomb cannot expand into gigabytes inside ``cv2.imdecode``; `decode_image` also
reads the declared size from the file header and refuses oversize images before decoding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2  # the service package set OpenCV's pixel limit before any import of it
import numpy as np

from service import MAX_IMAGE_PIXELS

CARD_KEYS = {
    "face_scale": "side of the aligned face square, in units of the face's size (see `face_frame`)",
    "eye_y": "height of the eyes' midpoint in the aligned face square (0 = top, 1 = bottom)",
    "min_face": "faces whose aligned square is smaller than this many image pixels are not judged",
    "face_size": "side in pixels the face crop is resized to",
    "input_size": "side in pixels of each view fed to the network",
    "crops": "list of [fx, fy] view positions inside the face (0 = left/top, 1 = right/bottom)",
    "mean": "per-channel RGB mean, 0..1 scale",
    "std": "per-channel RGB std, 0..1 scale",
}


class ImageError(ValueError):
    """The bytes are not an image this service can read; ``code`` is the stable API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class InputSpec:
    """The part of a model card that defines the network's input."""

    face_scale: float
    eye_y: float
    min_face: int
    face_size: int
    input_size: int
    crops: tuple[tuple[float, float], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_card(cls, card: dict) -> "InputSpec":
        return cls(
            face_scale=float(card["face_scale"]),
            eye_y=float(card["eye_y"]),
            min_face=int(card["min_face"]),
            face_size=int(card["face_size"]),
            input_size=int(card["input_size"]),
            crops=tuple((float(x), float(y)) for x, y in card["crops"]),
            mean=tuple(float(v) for v in card["mean"]),
            std=tuple(float(v) for v in card["std"]),
        )


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def use_opencv_threads(n: int) -> None:
    """OpenCV's threads within one call, for the whole process (0: OpenCV's default)."""
    cv2.setNumThreads(n if n > 0 else -1)  # OpenCV reads 0 as "no threads", < 0 as its default


def sniff_format(data: bytes) -> str | None:
    """Return 'jpeg', 'png', 'gif', 'bmp' or 'webp' from the magic bytes, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def declared_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Width and height the file header declares, read without decoding pixels."""
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "gif":
            return struct.unpack("<HH", data[6:10])
        if fmt == "bmp":
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if fmt == "webp":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
                return w, h
        if fmt == "jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError):
        return None
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame header's size: walk the segments (and fill bytes) up to the first SOFn."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        while data[i + 1] == 0xFF:  # any marker may be preceded by 0xFF fill bytes
            i += 1
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # the end, or a scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if length < 2:
            return None
        i += 2 + length
    return None


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG/WebP/GIF (first frame)/BMP bytes into a BGR uint8 array.

    Raises `ImageError` with code ``not_an_image``, ``image_too_large`` or ``corrupt_image``.
    The size is read from the header first and checked against ``max_pixels``; an image whose
    header does not say its size is refused, as OpenCV's own limit cannot be relied on (it is
    read once, when cv2 is first imported: a process that imported cv2 before the ``service``
    package has none).
    """
    if not data:
        raise ImageError("empty_image", "the image is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError("not_an_image", "not a JPEG, PNG, WebP, GIF or BMP image")
    size = declared_size(data, fmt)
    if size is None:
        raise ImageError("corrupt_image", f"the {fmt.upper()} header does not say the image size")
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError("corrupt_image", "the image declares an empty size")
    if w * h > max_pixels:
        raise ImageError(
            "image_too_large",
            f"the image declares {w}x{h} pixels, more than the limit of {max_pixels}",
        )
    try:
        if fmt == "gif":
            image = _decode_gif_first_frame(data)
        else:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:  # e.g. OpenCV's own pixel limit
        raise ImageError("corrupt_image", f"the {fmt.upper()} image cannot be decoded") from e
    if image is None or image.size == 0:
        raise ImageError("corrupt_image", f"the {fmt.upper()} image is truncated or corrupt")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError("image_too_large", "the decoded image exceeds the pixel limit")
    return image


def _decode_gif_first_frame(data: bytes) -> np.ndarray | None:
    # imdecode reads the first frame only; imdecodemulti would expand every frame of an
    # animation into memory (thousands of frames fit in a small, well-compressed file).
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)


# ---------------------------------------------------------------------------------------------
# Faces and views
# ---------------------------------------------------------------------------------------------


# The face's size: the larger of the eye distance and the eye-to-mouth distance (the second keeps
# turned heads, whose eyes come close together, at their true size). Frontal faces have the two
# about equal, so a face_scale of 2.5 spans roughly the forehead to below the chin.
def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """The image with its longer side at most ``side`` (area filter); the image itself if it
    is small enough already."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    f = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                      interpolation=cv2.INTER_AREA)


def shrink_fast(image: np.ndarray, side: int) -> np.ndarray:
    """`shrink` for the face finder's input, 4-10x cheaper: exact halvings (bilinear at a factor
    of 2 averages 2x2 pixels, as the area filter does), then one bilinear step of less than 2x.
    It differs from `shrink` by about one grey level on average (aliasing at sharp edges);
    the keypoints it leads to moved by 0.25 % of the eye distance (median, p90 1.1 %)."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    f = side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))  # as `shrink`: each step spans the image
    while max(h, w) >= 2 * side:  # a side of one pixel (a banner, a rule) stays one
        image = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_LINEAR)
        h, w = image.shape[:2]
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


# a picture is black and white when 99 % of its pixels have channels within this many grey levels
# of each other (JPEG's colour noise stays under it; no colour picture of ../shared/data does)
COLOURLESS_CHROMA = 8


def colourless(image: np.ndarray) -> bool:
    """Whether a BGR picture is black and white (grey, whatever its encoding), from about 256 x
    256 of its pixels. Every such picture the detectors learned from is a real photo."""
    if image.ndim < 3 or image.shape[2] < 3:
        return True
    h, w = image.shape[:2]
    step = max(1, max(h, w) // 256)
    sample = image if step == 1 else cv2.resize(
        image, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_NEAREST)
    b, g, r = cv2.split(sample)[:3]
    chroma = cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r))
    return np.count_nonzero(chroma >= COLOURLESS_CHROMA) <= 0.01 * chroma.size


def face_frame(keypoints: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The aligned face square as a 2x3 affine map from face-square pixels (0..face_size) to
    image pixels: eyes level, the face's size fixed, the eyes' midpoint at (0.5, eye_y)."""
    kp = np.asarray(keypoints, np.float64)
    eye_a, eye_b, mouth = kp[0], kp[1], kp[3]
    mid = (eye_a + eye_b) / 2.0
    across = eye_b - eye_a
    size = max(float(np.hypot(*across)), float(np.hypot(*(mouth - mid))), 1.0)
    ux = across / max(float(np.hypot(*across)), 1e-6)  # unit vector along the eyes
    if float(np.hypot(*across)) < 1e-6:
        ux = np.array([1.0, 0.0])
    uy = np.array([-ux[1], ux[0]])  # "down" in the face
    side = size * spec.face_scale
    k = side / spec.face_size  # image pixels per face-square pixel
    origin = mid - ux * (0.5 * side) - uy * (spec.eye_y * side)
    return np.array([[ux[0] * k, uy[0] * k, origin[0]], [ux[1] * k, uy[1] * k, origin[1]]])


def frame_quad(frame: np.ndarray, face_size: int) -> np.ndarray:
    """The face square's corners in image pixels (top-left, top-right, bottom-right, bottom-left)."""
    s = float(face_size)
    corners = np.array([[0, 0, 1], [s, 0, 1], [s, s, 1], [0, s, 1]], np.float64)
    return corners @ frame.T


def outside_share(quad: np.ndarray, width: int, height: int) -> float:
    """The share of an aligned square (its corners in image pixels) that lies outside the
    picture: the part `align_face` fills by repeating the picture's edge."""
    quad = np.asarray(quad, np.float32).reshape(-1, 2)
    area = abs(float(cv2.contourArea(quad)))
    if area <= 0.0:
        return 0.0
    rect = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    inside, _ = cv2.intersectConvexConvex(quad, rect)
    return float(min(1.0, max(0.0, 1.0 - inside / area)))


def frame_side(frame: np.ndarray, face_size: int) -> float:
    """Side of the face square in image pixels."""
    return float(np.hypot(frame[0, 0], frame[1, 0]) * face_size)


def align_face(image: np.ndarray, keypoints, spec: InputSpec, out_size: int | None = None,
               zoom: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The aligned face square (uint8, out_size x out_size, default face_size) and its frame.

    Parts of the square outside the image repeat the image's edge. A face much larger than the
    output is first shrunk with an area filter, so the warp never aliases. ``zoom`` > 1 takes a
    larger square around the same centre (training uses it for context to augment from).
    """
    out_size = out_size or spec.face_size
    frame = face_frame(keypoints, spec)
    if zoom != 1.0:
        c = frame @ np.array([spec.face_size / 2, spec.face_size / 2, 1.0])
        frame = frame.copy()
        frame[:, :2] *= zoom
        frame[:, 2] = c - frame[:, :2] @ np.array([spec.face_size / 2, spec.face_size / 2])
    # map from output pixels to image pixels
    m = frame.copy()
    m[:, :2] *= spec.face_size / out_size
    src, off = image, np.zeros(2)
    shrink = np.hypot(m[0, 0], m[1, 0])  # image pixels per output pixel
    quad = np.array([[0, 0, 1], [out_size, 0, 1], [out_size, out_size, 1], [0, out_size, 1]]) @ m.T
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(quad.min(0)).astype(int) - 2, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(quad.max(0)).astype(int) + 2, [x0 + 1, y0 + 1], [w, h])
    src, off = image[y0:y1, x0:x1], np.array([x0, y0], np.float64)
    m[:, 2] -= off
    if shrink > 1.5:  # area-filter first: the warp then only has to shrink by < 1.5
        f = 1.0 / (shrink / 1.25)
        sw, sh = max(1, round(src.shape[1] * f)), max(1, round(src.shape[0] * f))
        fx, fy = sw / src.shape[1], sh / src.shape[0]
        src = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA)
        m = np.array([[fx, 0], [0, fy]]) @ m
    face = cv2.warpAffine(src, m, (out_size, out_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return face, frame


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size (area filter when shrinking, bilinear when growing)."""
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def crop_origins(face_size: int, input_size: int, crops) -> list[tuple[int, int]]:
    """Top-left pixel of each view inside a face_size square."""
    span = max(0, face_size - input_size)
    return [(int(round(fx * span)), int(round(fy * span))) for fx, fy in crops]


def face_views(face_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The views of one face crop that a detector scores: uint8 BGR, shape (k, S, S, 3)."""
    face = resize_square(face_bgr, spec.face_size)
    s = spec.input_size
    return np.stack([face[y : y + s, x : x + s] for x, y in crop_origins(spec.face_size, s, spec.crops)])


def to_input(views_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 BGR (N, S, S, 3) -> normalised float32 RGB (N, 3, S, S), the network's input."""
    views_bgr = np.asarray(views_bgr)
    n, h, w = views_bgr.shape[:3]
    x = np.empty((n, 3, h, w), np.float32)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    # One channel at a time, in place: the same operations in the same order as
    # ``(bgr[..., ::-1] / 255 - mean) / std`` (bit for bit), at a sixth of the cost.
    for c in range(3):
        xc = x[:, c]
        xc[...] = views_bgr[..., 2 - c]
        xc /= np.float32(255.0)
        xc -= mean[c]
        xc /= std[c]
    return x


def combine_view_logits(logits: np.ndarray) -> np.ndarray:
    """A face's logit from its views' logits (the mean over the last axis, the views).

    (k,) -> scalar for one face; (n, k) -> (n,) for n faces, as evaluation scores them.
    """
    return np.mean(np.asarray(logits, np.float64), axis=-1)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))

"""Image preprocessing shared by training (`model_export/`) and serving (`service/`).

Every number that shapes a model's input (margin around a face, face size, crop size, crop
positions, normalisation) comes from the model card, so training and serving cannot drift apart.
The card keys used here are documented in `CARD_KEYS`.

Importing this module sets ``OPENCV_IO_MAX_IMAGE_PIXELS`` before OpenCV is imported, so that a
decompression bomb cannot expand into gigabytes inside ``cv2.imdecode``; `decode_image` also
reads the declared size from the file header and refuses oversize images before decoding.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from service.settings import DEFAULT_MAX_IMAGE_PIXELS  # plain Python: no cv2 yet

MAX_IMAGE_PIXELS = int(os.environ.get("REALCHECK_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

import cv2  # noqa: E402  (must follow the environment variable above)
import numpy as np  # noqa: E402

CARD_KEYS = {
    "face_margin": "fraction of the face box added on each side before cropping",
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

    face_margin: float
    face_size: int
    input_size: int
    crops: tuple[tuple[float, float], ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_card(cls, card: dict) -> "InputSpec":
        return cls(
            face_margin=float(card["face_margin"]),
            face_size=int(card["face_size"]),
            input_size=int(card["input_size"]),
            crops=tuple((float(x), float(y)) for x, y in card["crops"]),
            mean=tuple(float(v) for v in card["mean"]),
            std=tuple(float(v) for v in card["std"]),
        )


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


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
    read once, when cv2 is first imported, which may be before this module set it).
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


def expand_box(box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow an (x, y, w, h) face box by ``margin`` of its size on each side, square it, clip it.

    Returns (x0, y0, x1, y1) in image pixels.
    """
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(max(0.0, cx - side / 2.0)))
    y0 = int(round(max(0.0, cy - side / 2.0)))
    x1 = int(round(min(float(width), cx + side / 2.0)))
    y1 = int(round(min(float(height), cy + side / 2.0)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def crop_face(image: np.ndarray, box, margin: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop a face with margin; returns the crop and its (x0, y0, x1, y1) in the image."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = expand_box(box, margin, w, h)
    return image[y0:y1, x0:x1], (x0, y0, x1, y1)


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
    x = views_bgr[..., ::-1].astype(np.float32) / 255.0
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def combine_view_logits(logits: np.ndarray) -> np.ndarray:
    """A face's logit from its views' logits (the mean over the last axis, the views).

    (k,) -> scalar for one face; (n, k) -> (n,) for n faces, as evaluation scores them.
    """
    return np.mean(np.asarray(logits, np.float64), axis=-1)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))

"""Face finding with OpenCV's Haar cascades (shipped inside opencv-python-headless < 5)."""

from __future__ import annotations

import threading

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# preprocess sets OPENCV_IO_MAX_IMAGE_PIXELS, which OpenCV reads only when cv2 is first imported
# (often before this line): decode_image therefore checks the declared size itself.
from service.detection import preprocess  # noqa: F401

_CASCADE_FILE = "haarcascade_frontalface_default.xml"
_local = threading.local()

# Faces are searched on a copy whose longer side is at most this many pixels (speed), and
# faces smaller than MIN_FACE_FRACTION of the shorter side are ignored (noise).
DETECT_MAX_SIDE = 640
MIN_FACE_FRACTION = 0.08
MAX_FACES = 8


def _cascade() -> cv2.CascadeClassifier:
    # CascadeClassifier is not thread-safe: one per thread.
    c = getattr(_local, "cascade", None)
    if c is None:
        c = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE_FILE)
        if c.empty():
            raise RuntimeError(f"OpenCV face cascade {_CASCADE_FILE} is missing (opencv >= 5?)")
        _local.cascade = c
    return c


def find_faces(image_bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in image pixels, largest first, at most MAX_FACES."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = image_bgr if scale == 1.0 else cv2.resize(
        image_bgr, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA
    )
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    min_side = max(24, int(min(gray.shape) * MIN_FACE_FRACTION))
    found = _cascade().detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    boxes = [tuple(int(round(v / scale)) for v in b) for b in (found if len(found) else [])]
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    return boxes[:MAX_FACES]

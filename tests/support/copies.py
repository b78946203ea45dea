"""Copies of an image as they travel the web: re-encoded, resized, cropped, screenshotted."""

from __future__ import annotations

import cv2
import numpy as np


def _encode(image: np.ndarray, ext: str, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def jpeg_q50(data: bytes) -> bytes:
    return _encode(_decode(data), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 50])


def png(data: bytes) -> bytes:
    return _encode(_decode(data), ".png")


def webp(data: bytes) -> bytes:
    return _encode(_decode(data), ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80])


def half(data: bytes) -> bytes:
    img = _decode(data)
    h, w = img.shape[:2]
    return _encode(cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA), ".jpg")


def crop5_centre(data: bytes) -> bytes:
    """5 % of each side cut off, half on each edge."""
    img = _decode(data)
    h, w = img.shape[:2]
    dy, dx = round(0.025 * h), round(0.025 * w)
    return _encode(img[dy:h - dy, dx:w - dx], ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])


def crop5_corner(data: bytes) -> bytes:
    """5 % of each side cut off the top and the left."""
    img = _decode(data)
    h, w = img.shape[:2]
    return _encode(img[round(0.05 * h):, round(0.05 * w):], ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])


def screenshot(data: bytes) -> bytes:
    """Shown at 80 % on a light page (a bit brighter, a title bar above), captured as PNG."""
    img = _decode(data)
    h, w = img.shape[:2]
    shown = cv2.resize(img, (int(w * 0.8), int(h * 0.8)), interpolation=cv2.INTER_AREA)
    shown = cv2.convertScaleAbs(shown, alpha=1.03, beta=4)
    page = np.full((shown.shape[0] + 48, shown.shape[1] + 24, 3), 245, np.uint8)
    page[:20] = (60, 60, 60)  # a title bar
    page[36:36 + shown.shape[0], 12:12 + shown.shape[1]] = shown
    return _encode(page, ".png")


COPIES = {"jpeg_q50": jpeg_q50, "png": png, "webp": webp, "half": half,
          "crop5_centre": crop5_centre, "crop5_corner": crop5_corner, "screenshot": screenshot}

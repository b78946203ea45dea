"""Training-time augmentation (against source shortcuts) and self-blended fakes.

Everything works on uint8 BGR faces from the cache and ends in a ``face_size`` face, from which a
random ``input_size`` view is cut, like the service's views but at random positions.
"""

from __future__ import annotations

import cv2
import numpy as np


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


def _resize(img: np.ndarray, side: int) -> np.ndarray:
    h = img.shape[0]
    if h == side:
        return img
    interp = cv2.INTER_AREA if h > side else cv2.INTER_LINEAR
    return cv2.resize(img, (side, side), interpolation=interp)


def degrade(face: np.ndarray, rng: np.random.Generator, face_size: int) -> np.ndarray:
    """Random framing, resolution, blur, JPEG (at the reduced resolution, as the web does it)."""
    s = face.shape[0]
    side = int(s * rng.uniform(0.75, 1.0))
    x0, y0 = rng.integers(0, s - side + 1, size=2)
    img = face[y0 : y0 + side, x0 : x0 + side]
    if rng.random() < 0.5:  # the face arrives at a lower resolution than the model sees
        work = int(face_size * rng.uniform(0.35, 0.95))
        interp = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[rng.integers(3)]
        img = cv2.resize(img, (work, work), interpolation=interp)
    else:
        img = _resize(img, face_size)
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.6:
        img = _jpeg(img, rng.integers(30, 96))
    img = _resize(img, face_size)  # what `preprocess.resize_square` does in the service
    if rng.random() < 0.05:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return img


def random_view(face: np.ndarray, rng: np.random.Generator, input_size: int) -> np.ndarray:
    s = face.shape[0]
    x0, y0 = rng.integers(0, s - input_size + 1, size=2)
    v = face[y0 : y0 + input_size, x0 : x0 + input_size]
    if rng.random() < 0.5:
        v = v[:, ::-1]
    return v


def self_blend(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A self-blended image (Shiohara & Yamasaki, CVPR 2022, simplified without landmarks).

    A slightly altered copy of the real face (colour, sharpness, small shift/scale) is pasted back
    onto itself under a soft elliptical mask around the face centre: blending boundaries and
    statistical mismatches like a face swap's, with no identity change, and labelled fake.
    """
    s = face.shape[0]
    src = face.astype(np.float32)
    gain = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    src = src * gain + rng.uniform(-12, 12, 3).astype(np.float32)
    if rng.random() < 0.5:
        src = cv2.GaussianBlur(src, (0, 0), rng.uniform(0.4, 1.3))
    else:
        blur = cv2.GaussianBlur(src, (0, 0), 1.0)
        src = cv2.addWeighted(src, 1.6, blur, -0.6, 0)
    scale = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03, 2) * s
    m = np.float32([[scale, 0, (1 - scale) * s / 2 + tx], [0, scale, (1 - scale) * s / 2 + ty]])
    src = cv2.warpAffine(src, m, (s, s), borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros((s, s), np.float32)
    cx, cy = s / 2 + rng.uniform(-0.05, 0.05) * s, s * rng.uniform(0.5, 0.58)
    ax, ay = s * rng.uniform(0.22, 0.34), s * rng.uniform(0.28, 0.4)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), rng.uniform(-10, 10), 0, 360, 1.0, -1)
    k = int(s * rng.uniform(0.04, 0.12)) * 2 + 1
    mask = cv2.GaussianBlur(mask, (k, k), 0) * rng.uniform(0.6, 1.0)
    out = src * mask[..., None] + face.astype(np.float32) * (1 - mask[..., None])
    return np.clip(out, 0, 255).astype(np.uint8)

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


#: where the mouth lies in the aligned square (y0, y1, x0, x1 as fractions of its side), with room
#: for the training zoom, shift and rotation
MOUTH_BOX = (0.76, 1.0, 0.2, 0.8)


def mask_mouth(face: np.ndarray) -> np.ndarray:
    """The aligned face with its mouth region filled with the face's mean colour (a trial: does
    hiding the mouth, and with it every smile, change what the detectors call fake?)."""
    out = np.array(face, copy=True)
    n = out.shape[-2]
    y0, y1, x0, x1 = (round(f * n) for f in MOUTH_BOX)
    out[..., y0:y1, x0:x1, :] = out.reshape(*out.shape[:-3], -1, 3).mean(-2)[..., None, None, :]
    return out


def degrade(face: np.ndarray, rng: np.random.Generator, face_size: int, zoom: float = 1.25) -> np.ndarray:
    """A randomly degraded ``face_size`` face from a cached training face (``zoom`` x context).

    Against the shortcuts each source offers: the framing (a random zoom, shift and small rotation
    of the aligned square), the edges (a band of repeated edge pixels, as the service gets when a
    face touches the image's border), the resolution (the face arrives smaller than the model sees
    it, and is upscaled), sharpness, JPEG at the reduced size (as the web serves it), colour
    (brightness, contrast, saturation, grayscale).
    """
    s = face.shape[0]
    base = s / zoom  # the service's square inside the cached one
    scale = rng.uniform(0.88, 1.12)
    angle = rng.uniform(-8, 8) if rng.random() < 0.5 else 0.0
    shift = rng.uniform(-0.05, 0.05, 2) * base
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, 1.0)
    m[:, 2] += shift
    side = base * scale
    # output pixel -> cached pixel: centre crop of `side` around the (rotated, shifted) centre
    out = int(face_size * rng.uniform(0.3, 1.0)) if rng.random() < 0.6 else face_size
    k = side / out
    a = np.array([[k, 0, s / 2 - side / 2], [0, k, s / 2 - side / 2], [0, 0, 1]])
    full = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(full) @ a
    interp = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[rng.integers(3)]
    src = face
    if k > 1.5:
        src = cv2.resize(face, (int(s / k * 1.25), int(s / k * 1.25)), interpolation=cv2.INTER_AREA)
        f = src.shape[0] / s
        inv = np.diag([f, f, 1.0]) @ inv
        interp = cv2.INTER_LINEAR
    img = cv2.warpAffine(src, inv[:2], (out, out), flags=(interp if interp != cv2.INTER_AREA
                         else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.35:  # the face touches an image edge: repeat a band of edge pixels
        band = max(1, int(out * rng.uniform(0.03, 0.2)))
        side_ix = rng.integers(4)
        if side_ix == 0:
            img[:band] = img[band:band + 1]
        elif side_ix == 1:
            img[-band:] = img[-band - 1:-band]
        elif side_ix == 2:
            img[:, :band] = img[:, band:band + 1]
        else:
            img[:, -band:] = img[:, -band - 1:-band]
    if rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.4:  # colour: brightness, contrast, saturation
        f = img.astype(np.float32)
        f = (f - f.mean()) * rng.uniform(0.75, 1.25) + f.mean() + rng.uniform(-20, 20)
        gray = f.mean(axis=2, keepdims=True)
        f = gray + (f - gray) * rng.uniform(0.6, 1.3)
        img = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        img = _jpeg(img, rng.integers(30, 96))
    img = _resize(img, face_size)
    if rng.random() < 0.1:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return img


def grade(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photographic finishing that sets a professional portrait apart from a snapshot, drawn
    at random for faces of both classes alike, so that none of it tells the classes apart: white
    balance (warm or cool), a tone curve, retouched skin (edge-preserving smoothing) or crisp
    detail (unsharp masking), and a shallow depth of field (the surroundings of the face
    blurred)."""
    f = face.astype(np.float32)
    if rng.random() < 0.6:  # white balance: warm (more red, less blue) or cool; BGR order
        warm = rng.uniform(-0.12, 0.12)
        f = f * np.array([1 - warm, 1 + rng.uniform(-0.03, 0.03), 1 + warm], np.float32)
    if rng.random() < 0.5:
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** rng.uniform(0.75, 1.3)
    img = np.clip(f, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.3:
        img = cv2.bilateralFilter(img, 7, rng.uniform(15, 50), rng.uniform(3, 7))
    elif r < 0.55:
        amount = rng.uniform(0.3, 1.0)
        blur = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.5))
        img = cv2.addWeighted(img, 1 + amount, blur, -amount, 0)
    if rng.random() < 0.3:
        s = img.shape[0]
        mask = np.zeros((s, s), np.float32)
        cv2.ellipse(mask, (s // 2, int(s * 0.52)), (int(s * 0.36), int(s * 0.46)), 0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), s * 0.04)[..., None]
        far = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.5, 5.0))
        img = np.clip(img * mask + far * (1 - mask), 0, 255).astype(np.uint8)
    return img


def recolour(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A strong colour edit, drawn at random for faces of both classes alike, as people, phones
    and sites apply them (the photo edits of `model_export.photo_edits`): black and white, a
    toned print (sepia and the like), or white balance, exposure (gamma), saturation and contrast
    together, each well beyond `degrade`'s mild colour jitter."""
    f = face.astype(np.float32)
    r = rng.random()
    if r < 0.4:  # black and white, or a toned print
        gray = f @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR luma
        if r < 0.25:
            return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        tone = np.array([rng.uniform(0.7, 0.95), rng.uniform(0.88, 1.0), rng.uniform(1.0, 1.15)],
                        np.float32)
        f = gray[..., None] * (tone if rng.random() < 0.8 else tone[::-1])  # warm or cold tone
    else:
        f = f * np.array([rng.uniform(0.85, 1.15), rng.uniform(0.95, 1.05),
                          rng.uniform(0.85, 1.15)], np.float32)
        f = 255.0 * (np.clip(f, 0, 255) / 255.0) ** rng.uniform(0.6, 1.6)
        gray = f.mean(axis=2, keepdims=True)
        f = gray + (f - gray) * rng.uniform(0.4, 1.7)
        f = (f - f.mean()) * rng.uniform(0.7, 1.4) + f.mean()
    return np.clip(f, 0, 255).astype(np.uint8)


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

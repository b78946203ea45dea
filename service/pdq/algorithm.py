"""Meta's PDQ hash for small images, in NumPy, many images in one pass.

`service.pdq.hashing` shrinks every frame it hashes to at most 64x64 pixels first (area filter),
so only PDQ's small-image path is needed: at 128 pixels or less a side, PDQ's Jarosz blur has a
window of one pixel (it leaves the image as it is) and its decimation to 64x64 repeats pixels.
What is left is the reference algorithm's own arithmetic, in float32 as it does it: luminance,
the 16x16 low-frequency DCT without the DC row and column, one bit per coefficient above their
median, and the quality from the luminance's gradients. It gives the same bits and quality as the
reference C++ implementation (the ``pdqhash`` bindings; `tests/test_pdq_algorithm.py`) at a fifth
of the CPU for a check's eleven frames, as it runs them as one batch of matrix products.
"""

from __future__ import annotations

import numpy as np

SIDE = 64
#: the reference hashes nothing narrower: all-zero bits, quality 0
MIN_SIDE = 5
#: PDQ's DCT: rows 1..16 of the 64-point DCT-II (row 0, the mean, is left out)
_DCT = (np.sqrt(2.0 / SIDE) * np.cos(np.pi / 2 / SIDE * np.arange(1, 17)[:, None]
                                     * (2 * np.arange(SIDE)[None] + 1))).astype(np.float32)
_R, _G, _B = np.float32(0.299), np.float32(0.587), np.float32(0.114)


def _grid(n: int) -> np.ndarray:
    """PDQ's decimation to 64 samples of ``n`` (<= 128) pixels: the pixel under each centre."""
    return ((np.arange(SIDE) + 0.5) * n / SIDE).astype(np.int64)


def luma64(bgr: np.ndarray) -> np.ndarray:
    """The 64x64 float32 luminance PDQ hashes, of a BGR uint8 image at most 128 pixels a side
    (summed in the reference's order: red, green, blue)."""
    h, w = bgr.shape[:2]
    if h > 2 * SIDE or w > 2 * SIDE:
        raise ValueError("shrink the image to at most 128 pixels a side first")
    x = bgr.astype(np.float32)
    luma = x[..., 2] * _R + x[..., 1] * _G + x[..., 0] * _B
    if (h, w) != (SIDE, SIDE):
        luma = luma[_grid(h)][:, _grid(w)]
    return luma


def quality(luma: np.ndarray) -> np.ndarray:
    """PDQ's quality (0-100) of a (n, 64, 64) batch: the summed luminance steps between
    neighbours, each in whole percent of 255."""
    down = np.abs(np.trunc((luma[:, :-1, :] - luma[:, 1:, :]) * np.float32(100) / np.float32(255)))
    across = np.abs(np.trunc((luma[:, :, :-1] - luma[:, :, 1:]) * np.float32(100) / np.float32(255)))
    total = down.reshape(len(luma), -1).sum(1) + across.reshape(len(luma), -1).sum(1)
    return np.minimum(100, total.astype(np.int64) // 90)


def hashes(luma: np.ndarray) -> list[str]:
    """The 256-bit hashes, as 64 hexadecimal digits, of a (n, 64, 64) luminance batch."""
    coeffs = (_DCT @ luma @ _DCT.T).reshape(len(luma), -1)
    bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
    # the reference writes coefficient 255 first
    return [row.tobytes().hex() for row in np.packbits(bits[:, ::-1], axis=1)]


def compute(bgr_images: list[np.ndarray]) -> list[tuple[str, int]]:
    """(hash, quality) of each BGR uint8 image, each at most 128 pixels a side."""
    out: list[tuple[str, int] | None] = [
        ("0" * 64, 0) if min(im.shape[:2]) < MIN_SIDE else None for im in bgr_images]
    todo = [k for k, v in enumerate(out) if v is None]
    if todo:
        luma = np.stack([luma64(bgr_images[k]) for k in todo])
        for k, h, q in zip(todo, hashes(luma), quality(luma).tolist()):
            out[k] = (h, q)
    return out

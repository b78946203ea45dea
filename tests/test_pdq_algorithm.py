"""The service's NumPy PDQ gives the reference implementation's bits and quality (Meta's C++, through
the ``pdqhash`` bindings) on every kind of frame a check hashes."""

from __future__ import annotations

import cv2
import numpy as np
import pdqhash
import pytest

from service.detection.preprocess import decode_image, shrink_fast
from service.pdq import algorithm, hashing
from tests.support.paths import manifest, sample_images


def reference(bgr: np.ndarray) -> tuple[str, int]:
    """``pdqhash.compute`` on the frame, its bits packed as the service stores them."""
    bits, quality = pdqhash.compute(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def frames_of(image: np.ndarray) -> list[np.ndarray]:
    """What `hashing.fingerprint` hashes (the whole image, the nine windows), and a trimmed part
    cut as it cuts one."""
    frames, _ = hashing.frames(image)
    small = shrink_fast(image, hashing.HASH_SIDE)
    return [*frames, hashing.pdq_input(hashing.cut(small, (0.1, 0.05, 0.9, 0.8)))]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Two test images of every source in the face data, as decoded."""
    sources = sorted({r["source"] for r in manifest()})
    return [decode_image(p.read_bytes()) for s in sources for p in sample_images(2, source=s)]


def test_same_bits_and_quality_as_the_reference_on_photos(photos):
    frames = [f for image in photos for f in frames_of(image)]
    assert len(frames) >= 8 * 2 * 11
    assert algorithm.compute(frames) == [reference(f) for f in frames]


@pytest.mark.parametrize("shape", [(64, 64), (64, 40), (17, 64), (5, 9), (2, 3), (4, 64), (128, 96)])
def test_same_as_the_reference_on_small_and_odd_sizes(shape):
    """Frames smaller than 64 pixels (PDQ repeats their pixels) and up to 128 (still no blur)."""
    rng = np.random.default_rng(sum(shape))
    noise = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    for frame in (noise, smooth):
        assert algorithm.compute([frame]) == [reference(frame)]


def test_flat_frames_get_the_reference_quality():
    """Without texture every coefficient is rounding noise, so the bits are arbitrary here and in
    the reference alike; the quality says so, and such hashes are never matched."""
    flat = np.full((64, 64, 3), 128, np.uint8)
    ramp = np.repeat(np.arange(64, dtype=np.uint8)[None, :, None], 64, 0).repeat(3, 2)
    for frame in (flat, ramp, flat[:1, :1]):
        (_, quality), = algorithm.compute([frame])
        assert quality == reference(frame)[1] < hashing.DEFAULT_MIN_QUALITY


def test_larger_frames_are_refused():
    with pytest.raises(ValueError):
        algorithm.compute([np.zeros((129, 64, 3), np.uint8)])


def test_fingerprint_hashes_its_frames_as_the_reference_would(photos):
    """A bordered photo: the whole, trimmed and window hashes are the reference's own."""
    image = cv2.copyMakeBorder(photos[0], 40, 40, 60, 60, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    fp = hashing.fingerprint(image)
    frames, trim = hashing.frames(image)
    assert fp.trimmed is not None and fp.trim is not None and trim == fp.trim
    assert len(frames) == 11 and all(max(f.shape[:2]) <= hashing.PDQ_SIDE for f in frames)
    small = shrink_fast(image, hashing.HASH_SIDE)
    assert np.array_equal(frames[0], hashing.pdq_input(small))
    assert np.array_equal(frames[1], hashing.pdq_input(hashing.cut(small, fp.trim)))
    assert (fp.hash, fp.quality) == reference(frames[0])
    assert fp.trimmed == reference(frames[1])[0]
    assert fp.windows == [reference(f)[0] for f in frames[2:]]

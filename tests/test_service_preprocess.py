"""Decoding and the model input, shared by serving and training (plain functions, no HTTP)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from service.detection import preprocess as pp
from service.settings import REPO_ROOT
from tests.conftest import encode
from tests.test_service_checks import gif_bytes

W, H = 123, 77  # odd sizes catch swapped or off-by-one header fields


def image() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.dstack([x * 2, y * 3, (x + y) % 256]).astype(np.uint8)


ENCODINGS = {
    "jpeg": (".jpg", []),
    "jpeg-progressive": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    "png": (".png", []),
    "webp-lossy": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
    "webp-lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
    "bmp": (".bmp", []),
}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_header_size_and_decoding(name):
    ext, params = ENCODINGS[name]
    data = encode(image(), ext, params)
    fmt = pp.sniff_format(data)
    assert fmt == name.split("-")[0]
    assert pp.declared_size(data, fmt) == (W, H)
    decoded = pp.decode_image(data)
    assert decoded.shape == (H, W, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image()).mean() < 8


def test_gif_header_and_first_frame():
    grey = image()[..., 1]
    data = gif_bytes([grey, 255 - grey])
    assert pp.sniff_format(data) == "gif" and pp.declared_size(data, "gif") == (W, H)
    decoded = pp.decode_image(data)
    assert decoded.shape == (H, W, 3)
    assert (decoded[..., 0] == grey).all() and (decoded[..., 2] == grey).all()


def test_jpeg_size_is_found_past_other_segments():
    """An EXIF/APP segment and a comment before the frame header."""
    data = encode(image(), ".jpg")
    app1 = b"\xff\xe1" + (2 + 300).to_bytes(2, "big") + b"Exif\0\0" + b"\0" * 294
    com = b"\xff\xfe" + (2 + 5).to_bytes(2, "big") + b"hello"
    data = data[:2] + app1 + com + data[2:]
    assert pp.declared_size(data, "jpeg") == (W, H)
    assert pp.decode_image(data).shape == (H, W, 3)


def test_jpeg_fill_bytes_do_not_hide_the_size():
    data = encode(image(), ".jpg")
    sof = data.index(b"\xff\xc0")
    padded = data[:sof] + b"\xff\xff" + data[sof:]
    assert pp.declared_size(padded, "jpeg") == (W, H)
    assert pp.decode_image(padded).shape == (H, W, 3)
    # A 5000x5000 frame behind fill bytes: refused from its header, never decoded.
    big = bytearray(padded)
    big[sof + 2 + 5 : sof + 2 + 9] = struct.pack(">HH", 5000, 5000)
    with pytest.raises(pp.ImageError) as e:
        pp.decode_image(bytes(big), max_pixels=1_000_000)
    assert e.value.code == "image_too_large"


def test_a_header_without_a_size_is_refused():
    no_ihdr = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\0tEXt" + b"\0" * 40
    scan_first = b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 40 + b"\xff\xd9"
    for data in (no_ihdr, scan_first):
        with pytest.raises(pp.ImageError) as e:
            pp.decode_image(data)
        assert e.value.code == "corrupt_image"
    os2_bmp = b"BM" + struct.pack("<IHHI", 26, 0, 0, 26) + struct.pack("<IHHHH", 12, W, H, 1, 24)
    assert pp.declared_size(os2_bmp, "bmp") == (W, H)


@pytest.mark.parametrize("variant", ["grey", "alpha", "16bit"])
def test_png_variants_decode_to_bgr(variant):
    img = image()
    if variant == "grey":
        img = img[..., 0]
    elif variant == "alpha":
        img = np.dstack([img, np.full((H, W), 128, np.uint8)])
    else:
        img = img.astype(np.uint16) * 257
    decoded = pp.decode_image(encode(img, ".png"))
    assert decoded.shape == (H, W, 3) and decoded.dtype == np.uint8


def test_decode_errors():
    with pytest.raises(pp.ImageError) as e:
        pp.decode_image(b"")
    assert e.value.code == "empty_image"
    for stub in (b"GIF89a", b"GIF89a\x0a\x00\x0a\x00junk", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0",
                 b"BM", b"RIFF\0\0\0\0WEBPVP8 "):
        with pytest.raises(pp.ImageError) as e:
            pp.decode_image(stub)
        assert e.value.code == "corrupt_image", stub
    with pytest.raises(pp.ImageError) as e:
        pp.decode_image(encode(image(), ".png"), max_pixels=W * H - 1)
    assert e.value.code == "image_too_large"
    assert pp.decode_image(encode(image(), ".png"), max_pixels=W * H).shape == (H, W, 3)


def test_views_and_input_follow_the_card():
    card = json.loads((REPO_ROOT / "models" / "resnet.card.json").read_text())
    spec = pp.InputSpec.from_card(card)
    # keypoints of a level face: eyes 20 px apart at y=40, mouth 20 px below them
    kp = np.array([[50, 40], [70, 40], [60, 50], [60, 60], [40, 45], [80, 45]], np.float64)
    face, frame = pp.align_face(image(), kp, spec)
    assert face.shape == (spec.face_size, spec.face_size, 3)
    assert pp.frame_side(frame, spec.face_size) == pytest.approx(20 * spec.face_scale)
    quad = pp.frame_quad(frame, spec.face_size)
    eye_mid = np.array([60, 40])
    side = 20 * spec.face_scale
    assert np.allclose(quad[0], eye_mid - [side / 2, spec.eye_y * side])
    # each output pixel holds the image's pixel under the frame (a smooth image: no aliasing)
    smooth = np.dstack([np.mgrid[0:H, 0:W][1] * 2] * 3).astype(np.uint8)
    out, _ = pp.align_face(smooth, kp, spec)
    for u, v in ((10, 10), (56, 56), (100, 30)):
        x, y = frame @ [u + 0.5, v + 0.5, 1]
        assert abs(int(out[v, u, 0]) - 2 * min(max(x - 0.5, 0), W - 1)) <= 3
    views = pp.face_views(face, spec)
    s = spec.input_size
    assert views.shape == (len(spec.crops), s, s, 3) and views.dtype == np.uint8
    x = pp.to_input(views, spec)
    assert x.shape == (len(spec.crops), 3, s, s) and x.dtype == np.float32
    # RGB order and normalisation: channel 0 of the input is the red (last BGR) channel.
    red = views[0, ..., 2].astype(np.float32) / 255.0
    assert np.allclose(x[0, 0], (red - spec.mean[0]) / spec.std[0], atol=1e-5)
    # bit for bit the plain formula that the shipped scores were computed with
    plain = (views[..., ::-1].astype(np.float32) / 255.0 - np.asarray(spec.mean, np.float32)
             ) / np.asarray(spec.std, np.float32)
    assert np.array_equal(x, plain.transpose(0, 3, 1, 2)) and x.flags.c_contiguous


def test_an_animation_costs_one_frame():
    """Only the first frame is decoded: a long animation is no slower than a still."""
    grey = image()[..., 1]
    still = gif_bytes([grey])
    animation = gif_bytes([grey] + [np.roll(grey, i, axis=1) for i in range(1, 300)])

    def fastest(data: bytes) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            decoded = pp.decode_image(data)
            times.append(time.perf_counter() - started)
        assert (decoded[..., 1] == grey).all()
        return min(times)

    assert fastest(animation) < 10 * fastest(still) + 0.02


@pytest.mark.parametrize("size", [(1024, 1024), (1000, 750), (976, 1301), (200, 100)])
def test_the_finders_fast_shrink_matches_the_area_filter(size, face_bytes):
    """The face finder's input: the same size as `shrink`'s, and the same pixels up to aliasing
    at sharp edges (exact for halvings), on a real photo stretched to each size."""
    photo = cv2.resize(pp.decode_image(face_bytes), size, interpolation=cv2.INTER_CUBIC)
    a, b = pp.shrink(photo, 256), pp.shrink_fast(photo, 256)
    assert a.shape == b.shape
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.mean() < 1.5
    if size == (1024, 1024):
        assert diff.max() <= 1
    if max(size) <= 256:
        assert b is photo


def test_colourless_tells_black_and_white_pictures():
    """`preprocess.colourless`: grey pictures, whatever their encoding, and not colour ones, not
    even a toned (sepia) print or a picture with a little colour."""
    from model_export.robust import photo_edit

    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), np.uint8), (0, 0), 3)
    photo = cv2.normalize(photo, None, 0, 255, cv2.NORM_MINMAX)
    grey = photo_edit(photo, "gray", 0)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], 1)
    assert pp.colourless(grey) and pp.colourless(jpeg)
    assert pp.colourless(grey[..., 0])  # one channel
    assert not pp.colourless(photo)
    assert not pp.colourless(photo_edit(photo, "sepia", 0))
    spot = grey.copy()
    spot[100:160, 100:160] = (40, 60, 200)  # 3 % of the picture in red
    assert not pp.colourless(spot)


def test_opencv_has_the_pixel_limit_whatever_imports_cv2_first():
    """OpenCV reads its own decoders' pixel limit once, when cv2 is first imported: the service
    package sets it before any of its modules (or model_export's) can import cv2. Run in a fresh
    interpreter, where a module that imports cv2 before the preprocessing module comes first."""
    code = (
        "import {module}\n"
        "import cv2, numpy as np\n"
        "ok, buf = cv2.imencode('.png', np.zeros((6400, 6400), np.uint8))\n"  # 41 MP
        "try:\n"
        "    print('decoded' if cv2.imdecode(buf, 0) is not None else 'refused')\n"
        "except cv2.error:\n"
        "    print('refused')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENCV_IO_MAX_IMAGE_PIXELS", "REALCHECK_MAX_IMAGE_PIXELS")}
    for module in ("service.detection.faces", "service.pdq.hashing", "model_export.robust"):
        out = subprocess.run([sys.executable, "-c", code.format(module=module)], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.stdout.strip() == "refused", (module, out.stdout, out.stderr[-500:])

"""Bad requests get a JSON error with a stable code, and nothing breaks."""

from __future__ import annotations

import struct
import time
import zlib

import aiohttp
import numpy as np
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import encode

SMALL_LIMIT = 50_000


async def error_of(resp, status: int) -> str:
    """Assert the status and the JSON error shape; return the error code."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"]
    return body["error"]


def form_with(data: bytes, field: str = "image", content_type: str = "image/png") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename="upload", content_type=content_type)
    return form


async def post_form(client, headers, data: bytes, **kw):
    return await client.post("/v1/checks", data=form_with(data, **kw), headers=headers)


def noise(h: int, w: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


async def chunks(data: bytes, size: int = 16384):
    """A body without Content-Length (chunked transfer encoding)."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.fixture
async def small_client(aiohttp_client, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", max_body_bytes=SMALL_LIMIT,
                        rate_limit_per_minute=0)
    return await aiohttp_client(create_app(settings))


async def test_body_over_the_limit(small_client, auth):
    big = encode(noise(200, 200))
    assert len(big) > SMALL_LIMIT
    resp = await post_form(small_client, auth(), big)
    assert await error_of(resp, 413) == "payload_too_large"
    raw = {**auth(), "Content-Type": "image/png"}
    resp = await small_client.post("/v1/checks", data=big, headers=raw)
    assert await error_of(resp, 413) == "payload_too_large"
    resp = await small_client.post("/v1/checks", data=chunks(big), headers=raw)
    assert await error_of(resp, 413) == "payload_too_large"
    resp = await small_client.post("/v1/checks", data=chunks(b'{"url": "' + b"a" * SMALL_LIMIT + b'"}'),
                                   headers={**auth(), "Content-Type": "application/json"})
    assert await error_of(resp, 413) == "payload_too_large"
    # Still serving: a small image goes through.
    resp = await post_form(small_client, auth(), encode(noise(60, 80)))
    assert resp.status == 201


async def test_multipart_chunked_over_the_limit(small_client, auth):
    form = form_with(encode(noise(200, 200)))
    payload = form()
    body = aiohttp.payload.AsyncIterablePayload(chunks(await read_payload(payload)))
    resp = await small_client.post("/v1/checks", data=body,
                                   headers={**auth(), "Content-Type": payload.content_type})
    assert await error_of(resp, 413) == "payload_too_large"


async def read_payload(payload) -> bytes:
    class Sink:
        def __init__(self):
            self.parts = []

        async def write(self, data):
            self.parts.append(bytes(data))

    sink = Sink()
    await payload.write(sink)
    return b"".join(sink.parts)


async def test_default_limit_takes_a_1080p_png(client, auth):
    ramp = np.linspace(0, 200, 1920, dtype=np.float32)[None, :, None]
    image = (ramp + noise(1080, 1920) * 0.2).astype(np.uint8)
    data = encode(image)
    assert len(data) > 1024 * 1024
    resp = await post_form(client, auth(), data)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert (body["width"], body["height"]) == (1920, 1080)


async def test_not_an_image(client, auth):
    for data in (b"hello, this is text", b"%PDF-1.7\n...", b"\x00" * 64, b"\xff\xd8"):
        assert await error_of(await post_form(client, auth(), data), 400) == "not_an_image", data


@pytest.mark.parametrize("shape", [(1, 5000), (20000, 2), (40, 6000), (1, 1)],
                         ids=lambda s: f"{s[1]}x{s[0]}")
async def test_images_of_extreme_shapes_are_checked(client, auth, shape):
    """A banner one pixel high, a 2-pixel rule 20,000 long, a strip: no face, not judged (their
    halvings once asked OpenCV for a side of 0 pixels: a 500; the face finder's tiles, of the
    strip's own width, numbered thousands)."""
    h, w = shape  # soft stripes (noise this thin shows the face finder specks of "faces")
    data = encode(np.broadcast_to((np.arange(w)[None, :, None] * 7 + np.arange(h)[:, None, None] * 5
                                   + np.arange(3) * 60) % 256, (h, w, 3)).astype(np.uint8), ".png")
    resp = await post_form(client, auth(), data)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert (body["width"], body["height"]) == (shape[1], shape[0])
    assert body["verdict"] == "no_face" and body["faces"] == []
    assert len(body["pdq"]["hash"]) == 64


def truncated(ext: str) -> bytes:
    data = encode(noise(120, 160) // 4 * 4, ext)
    return data[: len(data) // 2]


async def test_truncated_image(client, auth):
    for ext in (".jpg", ".png", ".webp"):
        resp = await post_form(client, auth(), truncated(ext))
        assert await error_of(resp, 400) == "corrupt_image", ext


async def test_empty_image(client, auth):
    assert await error_of(await post_form(client, auth(), b""), 400) == "empty_image"
    resp = await client.post("/v1/checks", data=b"", headers={**auth(), "Content-Type": "image/png"})
    assert await error_of(resp, 400) == "empty_image"


def png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


def huge_headers() -> dict[str, bytes]:
    """Tiny files whose headers declare 30000x30000 pixels (a decompression bomb's shape)."""
    n = 30000
    bmp_info = struct.pack("<IiiHHIIiiII", 40, n, n, 1, 24, 0, 0, 2835, 2835, 0, 0)
    sof = struct.pack(">BHHB", 8, n, n, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return {
        "png": png_header(n, n),
        "gif": b"GIF89a" + struct.pack("<HHBBB", n, n, 0, 0, 0) + b";",
        "bmp": b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + bmp_info,
        "jpeg": b"\xff\xd8\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9",
        # 0xFF fill bytes before the frame header are legal and must not hide the size.
        "jpeg-fill": b"\xff\xd8\xff\xff\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9",
        "webp": b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10)
                + b"\0\0\0\0" + (n - 1).to_bytes(3, "little") * 2,
    }


async def test_huge_declared_size_is_refused_without_decoding(client, auth):
    for fmt, data in huge_headers().items():
        assert len(data) < 2048
        started = time.perf_counter()
        resp = await post_form(client, auth(), data)
        assert await error_of(resp, 400) == "image_too_large", fmt
        assert time.perf_counter() - started < 1.0, fmt


async def test_missing_image_field(client, auth, face_bytes):
    resp = await post_form(client, auth(), face_bytes, field="file")
    assert await error_of(resp, 400) == "missing_image"
    form = aiohttp.FormData()
    form.add_field("page_url", "https://example.com/")
    form.add_field("note", b"x", filename="x.txt", content_type="text/plain")
    resp = await client.post("/v1/checks", data=form, headers=auth())
    assert await error_of(resp, 400) == "missing_image"


async def test_wrong_content_type(client, auth, face_bytes):
    for path in ("/v1/checks", "/predict"):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            resp = await client.post(path, data=face_bytes, headers={**auth(), "Content-Type": ctype})
            assert await error_of(resp, 415) == "unsupported_media_type", (path, ctype)


async def test_broken_multipart(client, auth):
    resp = await client.post("/v1/checks", data=b"--x\r\nnonsense",
                             headers={**auth(), "Content-Type": "multipart/form-data"})
    assert await error_of(resp, 400) == "bad_multipart"
    nested = (b'--x\r\nContent-Disposition: form-data; name="image"\r\n'
              b"Content-Type: multipart/mixed; boundary=y\r\n\r\n"
              b"--y\r\nContent-Type: image/png\r\n\r\nabc\r\n--y--\r\n\r\n--x--\r\n")
    unclosed = b'--x\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc'
    for body in (nested, unclosed, b""):
        resp = await client.post("/v1/checks", data=body, headers={
            **auth(), "Content-Type": "multipart/form-data; boundary=x"})
        assert await error_of(resp, 400) == "bad_multipart", body


async def test_malformed_json(client, auth):
    for body in (b"{not json", b'{"url": ', b"[1, 2]", b'"text"', b"\xff\xfe", b""):
        resp = await client.post("/v1/checks", data=body,
                                 headers={**auth(), "Content-Type": "application/json"})
        assert await error_of(resp, 400) == "bad_json", body


async def test_bad_text_fields(client, auth):
    """Refused before anything is fetched (x.example does not resolve: that would be fetch_failed)."""
    for payload in ({"url": "https://x.example/a.jpg", "page_url": 5},
                    {"url": "https://x.example/a.jpg", "page_url": "https://p.example/" + "a" * 3000},
                    {"url": "https://x.example/" + "a" * 3000}):
        resp = await client.post("/v1/checks", json=payload, headers=auth())
        assert await error_of(resp, 400) == "bad_field"


async def test_authentication_comes_before_the_body(small_client):
    resp = await post_form(small_client, {}, b"x" * (SMALL_LIMIT + 10))
    assert await error_of(resp, 401) == "missing_token"


async def test_rate_limit(aiohttp_client, tmp_path, auth, face_bytes, database_url):
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=2, database_url=database_url)
    client = await aiohttp_client(create_app(settings))
    for _ in range(2):
        assert (await post_form(client, auth("alice"), face_bytes)).status == 201
    resp = await post_form(client, auth("alice"), face_bytes)
    assert await error_of(resp, 429) == "rate_limited"
    body = await resp.json()
    assert 0 < body["retry_after_s"] <= 60  # when the oldest post leaves the 60 s window
    assert int(resp.headers["Retry-After"]) >= 1
    sha = (await (await client.get("/v1/checks", headers=auth("alice"))).json())["items"][0]["sha256"]
    resp = await client.get(f"/v1/checks?sha256={sha}", headers=auth("alice"))
    assert await error_of(resp, 429) == "rate_limited", "lookups count too"
    # Per user: bob is not slowed down by alice.
    assert (await post_form(client, auth("bob"), face_bytes)).status == 201
    # Reading one's own checks is not limited.
    assert (await client.get("/v1/checks", headers=auth("alice"))).status == 200


async def test_repeated_posts_of_one_image_keep_one_check_and_meet_the_limit(
        aiohttp_client, tmp_path, auth, face_bytes):
    """125 re-posts of one known image: one check row counting them, and the 121st is refused
    (a post costs a whole check even when its result is cached)."""
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=120)
    client = await aiohttp_client(create_app(settings))
    answers = [await post_form(client, auth("alice"), face_bytes) for _ in range(125)]
    statuses = [r.status for r in answers]
    assert statuses == [201] * 120 + [429] * 5, statuses
    first, last = await answers[0].json(), await answers[119].json()
    assert last["id"] == first["id"] and last["count"] == 120 and last["cached"] is True
    listed = await (await client.get("/v1/checks", headers=auth("alice"))).json()
    assert [(c["id"], c["count"]) for c in listed["items"]] == [(first["id"], 120)]
    assert last["last_seen_at"] >= first["created_at"] == last["created_at"]


async def test_the_limit_is_a_sliding_minute(tmp_path):
    from service.ratelimit import WindowLimiter
    from service.store.sqlite import SqliteDatabase

    db = await SqliteDatabase.open(tmp_path / "limits.sqlite3")
    try:
        limiter = WindowLimiter(db, 3)
        assert [await limiter.take("a", at=t) for t in (0, 1, 2)] == [0, 0, 0]
        assert await limiter.take("a", at=30) == 30  # the post at t=0 leaves the window at t=60
        assert await limiter.take("a", at=60) == 0
        assert await limiter.take("a", cost=0.5, at=60.5) == 0.5  # wait for the post at t=1
        assert await limiter.take("b", at=60.5) == 0  # per key
        assert await limiter.prune(at=500) > 0
        assert await limiter.take("a", at=500) == 0
    finally:
        await db.close()

"""Bad videos and broken limits: a clear JSON error within a second, and nothing stored.

Corrupt and truncated containers, audio only, zero length, too long, too large, too many
pixels, absurd frame rates, frame sequences that break their rules; and the URL path with its
SSRF guard. Every refusal is timed and followed by a look at the database: no job, no image row,
no check.
"""

from __future__ import annotations

import asyncio
import functools
import time

import aiohttp
import cv2
import pytest
from aiohttp import web

from service.app import create_app
from service.keys import DB
from service.settings import Settings
from tests.support.paths import require_shared_data, sample_images
from tests.support.videos import Appearance, audio_only, encode

LIMIT = 400_000


@functools.cache
def clip(seconds: float = 2.0, size=(480, 320), fps: int = 10) -> bytes:
    require_shared_data()
    face = cv2.imread(str(sample_images(1, source="tpdne-unsplash", label="real")[0]))
    return encode([Appearance(face, 0.0, seconds, (20, 20), (60, 40))], seconds=seconds,
                  size=size, fps=fps)


@pytest.fixture
async def strict(aiohttp_client, tmp_path, database_url):
    """Small limits: 2.5 s, 400 kB (images 100 kB), 640x480 pixels, 8 frames per sequence."""
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0,
                        database_url=database_url, video_max_duration_s=2.5,
                        video_max_bytes=LIMIT, video_max_pixels=640 * 480, video_max_side=800,
                        video_max_frames=8, fetch_allow_private=True, max_body_bytes=100_000)
    client = await aiohttp_client(create_app(settings))
    client.db = client.server.app[DB]
    return client


async def refused(client, headers, status: int, code: str, **post) -> None:
    began = time.perf_counter()
    resp = await client.post("/v1/checks", headers=headers, **post)
    took = time.perf_counter() - began
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"] == code, body
    assert body["message"]
    assert took < 1.0, f"{code} took {took:.2f} s"


async def nothing_stored(client) -> None:
    for table in ("jobs", "images", "checks", "video_frames", "video_tracks"):
        assert await client.db.fetchval(f"SELECT COUNT(*) FROM {table}") == 0, table


async def post_raw(client, headers, status, code, data: bytes, ctype: str = "video/mp4"):
    await refused(client, {**headers, "Content-Type": ctype}, status, code, data=data)


def form(**parts) -> aiohttp.FormData:
    f = aiohttp.FormData()
    for name, value in parts.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bytes):
                f.add_field(name, v, filename="x", content_type="application/octet-stream")
            else:
                f.add_field(name, v)
    return f


async def test_broken_videos_are_refused_at_once(strict, auth):
    user = auth("alice")
    good = clip()
    await post_raw(strict, user, 400, "empty_body", b"")
    await post_raw(strict, user, 400, "bad_video", good[: len(good) // 4])  # truncated
    corrupt = bytearray(good)
    corrupt[24:4000] = bytes(len(corrupt[24:4000]))  # header intact, boxes zeroed
    await post_raw(strict, user, 400, "bad_video", bytes(corrupt))
    await post_raw(strict, user, 400, "bad_video", b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "video/webm")
    await post_raw(strict, user, 400, "bad_video", audio_only())
    await post_raw(strict, user, 400, "bad_video", b"RIFF\x00\x00\x00\x00AVI LIST" * 4,
                   "video/x-msvideo")
    await refused(strict, user, 400, "bad_video", data=form(video=b"not a video at all"))
    await refused(strict, user, 400, "empty_body", data=form(video=b""))
    await post_raw(strict, user, 400, "video_too_long", clip(seconds=3.0))
    await post_raw(strict, user, 400, "video_resolution", clip(seconds=0.5, size=(864, 480)))
    await post_raw(strict, user, 413, "video_too_large", good + b"\0" * LIMIT)  # by its length
    # A multipart body longer than the limit is refused by its length, before any part is read.
    await refused(strict, user, 413, "payload_too_large",
                  data=form(video=good + b"\0" * (LIMIT - len(good) + 1)))
    await post_raw(strict, user, 400, "too_many_frames", encode([], seconds=0.05, fps=1000))
    await nothing_stored(strict)


async def test_bad_frame_sequences(strict, auth):
    user = auth("alice")
    ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(sample_images(1, label="real")[0])))
    frame = jpeg.tobytes()
    await refused(strict, user, 400, "bad_field", data=form(frame=[frame, frame]))  # no fps
    for fps in ("0", "-2", "nan", "inf", "1e9", "two"):
        await refused(strict, user, 400, "bad_field", data=form(frame=[frame], fps=fps))
    await refused(strict, user, 400, "too_many_frames", data=form(frame=[frame] * 9, fps="2"))
    await refused(strict, user, 400, "bad_frame", data=form(frame=[frame, b"garbage"], fps="2"))
    await refused(strict, user, 400, "bad_field",
                  data=form(frame=[frame], fps="2", capture="screen"))
    ok, big = cv2.imencode(".jpg", cv2.resize(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), (900, 700)))
    await refused(strict, user, 400, "video_resolution", data=form(frame=[big.tobytes()], fps="2"))
    await refused(strict, user, 400, "bad_multipart", data=form(frame=[frame], video=clip(), fps="2"))
    await nothing_stored(strict)


async def test_video_by_url_and_the_ssrf_guard(strict, auth, aiohttp_server, aiohttp_client,
                                               tmp_path):
    user = auth("alice")
    clip()  # encoded before the clock starts

    async def small(request):
        return web.Response(body=clip(), content_type="video/mp4")

    async def big(request):
        return web.Response(body=clip() + b"\0" * LIMIT, content_type="video/mp4")

    site = web.Application()
    site.router.add_get("/clip.mp4", small)
    site.router.add_get("/big.mp4", big)
    server = await aiohttp_server(site)
    await refused(strict, user, 413, "video_too_large",
                  json={"url": str(server.make_url("/big.mp4"))})
    resp = await strict.post("/v1/checks", headers=user,
                             json={"url": str(server.make_url("/clip.mp4")),
                                   "page_url": "https://example.com/p"})
    assert resp.status == 202, await resp.text()
    location = resp.headers["Location"]
    deadline = time.monotonic() + 60
    while (job := (await (await strict.get(location, headers=user)).json())["job"])["status"] \
            not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)  # a poll interval
    assert job["status"] == "done", job
    assert job["check"]["source_url"] == str(server.make_url("/clip.mp4"))
    assert job["check"]["page_url"] == "https://example.com/p"
    # With the default settings, a private address is never fetched.
    guarded = await aiohttp_client(create_app(Settings(
        data_dir=tmp_path / "data", rate_limit_per_minute=0,
        database_url=f"sqlite:///{tmp_path / 'guarded.sqlite3'}")))
    resp = await guarded.post("/v1/checks", headers=user,
                              json={"url": str(server.make_url("/clip.mp4"))})
    assert resp.status == 400 and (await resp.json())["error"] == "url_forbidden"

"""POST /v1/checks with {"url": ...}: fetching within limits, and never from private addresses.

Images are served by a real local HTTP server. Reaching it needs ``fetch_allow_private`` (it
is on loopback); with the default settings every private destination is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from urllib.parse import quote

import pytest
from aiohttp import web

from service.app import create_app
from service.checks import fetch
from service.settings import Settings

LIMIT = 100_000


class ImageSite:
    """A small web site: an image, a huge one, a slow one, redirects, an error page."""

    def __init__(self, face: bytes):
        self.face = face
        self.hits = 0
        app = web.Application()
        app.router.add_get("/face.jpg", self.image)
        app.router.add_get("/big.jpg", self.big)
        app.router.add_get("/big-stream.jpg", self.big_stream)
        app.router.add_get("/slow.jpg", self.slow)
        app.router.add_get("/page.html", self.page)
        app.router.add_get("/to", self.redirect)
        app.router.add_get("/loop", self.loop)
        self.app = app

    async def image(self, request):
        self.hits += 1
        return web.Response(body=self.face, content_type="image/jpeg")

    async def big(self, request):
        self.hits += 1
        return web.Response(body=self.face + b"\0" * (LIMIT + 1), content_type="image/jpeg")

    async def big_stream(self, request):
        """Chunked, no Content-Length: the limit must hold while reading."""
        self.hits += 1
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(2 * LIMIT // 8192):
            await resp.write(b"\xff" * 8192)
        await resp.write_eof()
        return resp

    async def slow(self, request):
        self.hits += 1
        await asyncio.sleep(10)
        return web.Response(body=self.face, content_type="image/jpeg")

    async def page(self, request):
        self.hits += 1
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    async def redirect(self, request):
        """Location exactly as asked for, however broken (a hostile site sends anything)."""
        self.hits += 1
        return web.Response(status=302, headers={"Location": request.query["url"]})

    async def loop(self, request):
        self.hits += 1
        raise web.HTTPFound("/loop")


@pytest.fixture
async def site(aiohttp_server, face_bytes):
    s = ImageSite(face_bytes)
    s.server = await aiohttp_server(s.app)
    s.url = lambda path: str(s.server.make_url(path))
    return s


async def make_client(aiohttp_client, tmp_path, **changes):
    """The app on the data folder the `auth` fixture signs for."""
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, **changes)
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def open_client(aiohttp_client, tmp_path):
    """Loopback allowed (test hook), 100 kB limit, 1 s fetch timeout."""
    return await make_client(aiohttp_client, tmp_path, fetch_allow_private=True,
                             max_body_bytes=LIMIT, fetch_timeout_s=1.0)


@pytest.fixture
async def default_client(aiohttp_client, tmp_path):
    return await make_client(aiohttp_client, tmp_path)


async def check_url(client, auth, url, **extra):
    resp = await client.post("/v1/checks", json={"url": url, **extra}, headers=auth())
    return resp.status, await resp.json()


async def test_image_by_url(open_client, auth, site, face_bytes):
    url = site.url("/face.jpg")
    status, body = await check_url(open_client, auth, url, page_url="https://news.example/p")
    assert status == 201, body
    assert body["sha256"] == hashlib.sha256(face_bytes).hexdigest()
    assert body["source_url"] == url and body["page_url"] == "https://news.example/p"
    assert body["face_found"] is True and body["cached"] is False
    status, again = await check_url(open_client, auth, url)
    assert status == 201 and again["cached"] is True and site.hits == 2


async def test_redirects_are_followed_within_the_limit(open_client, auth, site):
    status, body = await check_url(open_client, auth, site.url("/to?url=/face.jpg"))
    assert status == 201, body
    status, body = await check_url(open_client, auth, site.url("/loop"))
    assert (status, body["error"]) == (400, "too_many_redirects")


async def test_too_large_remote_image(open_client, auth, site):
    for path in ("/big.jpg", "/big-stream.jpg"):  # declared, and found while reading
        status, body = await check_url(open_client, auth, site.url(path))
        assert (status, body["error"]) == (413, "payload_too_large"), path


async def test_slow_remote_image_times_out(open_client, auth, site):
    started = time.monotonic()
    status, body = await check_url(open_client, auth, site.url("/slow.jpg"))
    assert (status, body["error"]) == (400, "fetch_timeout")
    assert time.monotonic() - started < 5


async def test_remote_errors_and_non_images(open_client, auth, site):
    status, body = await check_url(open_client, auth, site.url("/missing.jpg"))
    assert (status, body["error"]) == (400, "fetch_failed") and "404" in body["message"]
    status, body = await check_url(open_client, auth, site.url("/page.html"))
    assert (status, body["error"]) == (400, "not_an_image")
    port = site.server.port
    await site.server.close()
    status, body = await check_url(open_client, auth, f"http://127.0.0.1:{port}/face.jpg")
    assert (status, body["error"]) == (400, "fetch_failed")


async def test_json_without_a_usable_url(open_client, auth):
    for payload in ({}, {"url": ""}, {"url": 42}, {"image": "x"}):
        resp = await open_client.post("/v1/checks", json=payload, headers=auth())
        assert resp.status == 400 and (await resp.json())["error"] == "missing_url", payload


def forbidden_urls(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/face.jpg", "url_forbidden"),
        (f"http://localhost:{port}/face.jpg", "url_forbidden"),
        (f"http://LOCALHOST:{port}/face.jpg", "url_forbidden"),
        (f"http://[::1]:{port}/face.jpg", "url_forbidden"),
        (f"http://[::ffff:127.0.0.1]:{port}/face.jpg", "url_forbidden"),
        (f"http://0.0.0.0:{port}/face.jpg", "url_forbidden"),
        # A host name (not an address literal) that resolves to loopback: caught by the resolver.
        (f"http://0x7f000001:{port}/face.jpg", "url_forbidden"),
        ("http://10.1.2.3/a.jpg", "url_forbidden"),
        ("http://172.16.0.1/a.jpg", "url_forbidden"),
        ("http://192.168.1.1/a.jpg", "url_forbidden"),
        ("http://100.64.0.1/a.jpg", "url_forbidden"),
        ("http://169.254.169.254/latest/meta-data/", "url_forbidden"),
        ("http://[fe80::1]/a.jpg", "url_forbidden"),
        ("http://[fd00::1]/a.jpg", "url_forbidden"),
        ("http://224.0.0.1/a.jpg", "url_forbidden"),
        # IPv6 forms that carry a private IPv4 address, and IPv6's own non-public ranges.
        (f"http://[::7f00:1]:{port}/face.jpg", "url_forbidden"),  # IPv4-compatible 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "url_forbidden"),  # NAT64 169.254...
        ("http://[64:ff9b::a00:1]/a.jpg", "url_forbidden"),  # NAT64 10.0.0.1
        ("http://[64:ff9b:1::a00:1]/a.jpg", "url_forbidden"),  # NAT64 local use
        ("http://[2002:7f00:1::1]/a.jpg", "url_forbidden"),  # 6to4 of 127.0.0.1
        ("http://[2002:c0a8:101::1]/a.jpg", "url_forbidden"),  # 6to4 of 192.168.1.1
        ("http://[fec0::1]/a.jpg", "url_forbidden"),  # site-local
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.jpg", "url_forbidden"),  # Teredo
        ("file:///etc/passwd", "bad_url"),
        ("ftp://example.com/a.jpg", "bad_url"),
        ("gopher://example.com/", "bad_url"),
        ("http://user:secret@example.com/a.jpg", "bad_url"),
        ("//example.com/a.jpg", "bad_url"),
        ("not a url", "bad_url"),
        ("http://[::1/a.jpg", "bad_url"),
        ("http://example.com:99999/a.jpg", "bad_url"),
        ("https://" + "a" * 300 + ".example/a.jpg", "bad_url"),  # a label over 63 characters
    ]


def test_embedded_ipv4_addresses_are_judged_by_the_ipv4_rules():
    for address in ("::7f00:1", "::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:a00:1::",
                    "2002:a9fe:a9fe::1", "::ffff:10.0.0.1", "fec0::1", "64:ff9b:1::808:808"):
        assert not fetch.is_public(address), address
    for address in ("64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111",
                    "8.8.8.8"):
        assert fetch.is_public(address), address


async def test_private_destinations_are_refused_by_default(default_client, auth, site):
    for url, code in forbidden_urls(site.server.port):
        status, body = await check_url(default_client, auth, url)
        assert (status, body["error"]) == (400, code), url
    assert site.hits == 0, "nothing private was reached"


async def test_redirects_to_private_destinations_are_refused(aiohttp_server, aiohttp_client,
                                                             tmp_path, auth, face_bytes,
                                                             monkeypatch):
    """A public site that redirects inward. There is no internet here, so the site runs on
    127.0.0.2 and the address policy is told that this one address is public; every other
    loopback/private address keeps the real policy."""
    real = fetch.is_public
    monkeypatch.setattr(fetch, "is_public", lambda a: a == "127.0.0.2" or real(a))
    site = ImageSite(face_bytes)
    server = await aiohttp_server(site.app, host="127.0.0.2")
    client = await make_client(aiohttp_client, tmp_path)
    public = f"http://127.0.0.2:{server.port}"
    status, body = await check_url(client, auth, f"{public}/to?url={quote(public + '/face.jpg')}")
    assert status == 201, body  # the "public" site itself is reachable
    for url, code in forbidden_urls(server.port):
        if "://" not in url or url.startswith("//"):
            continue  # relative: a redirect resolves it against the public site
        status, body = await check_url(client, auth, f"{public}/to?url={quote(url, safe='')}")
        assert (status, body["error"]) == (400, code), url

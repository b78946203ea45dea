"""The browser extension under test: a local web site with face images, a counting proxy in front
of the real service, and Chromium with the unpacked extension loaded.

`Site` runs two aiohttp servers on one background thread:

* the *pages* origin serves the test pages (HTML given by the test), the images copied from
  ../shared/data, and ``/private/...`` images that need the cookie the pages set (an image
  "behind a login");
* the *proxy* origin forwards everything to the real service and records each request, so a
  test can tell a hash lookup from a pixel upload. It also serves a stand-in ``/signin`` page
  showing a token the way the service's sign-in page does (``[data-realcheck-token]``).
"""

from __future__ import annotations

import asyncio
import html
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.support.browser import CHROMIUM_ARGS, chromium_path

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "extension"
COOKIE = ("rc_session", "signed-in")
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding",
               "keep-alive"}


@dataclass
class Seen:
    """One request the proxy forwarded to the service."""

    method: str
    path: str
    query: dict
    status: int
    body: bytes
    started: float
    ended: float

    @property
    def is_upload(self) -> bool:
        return self.method == "POST" and self.path == "/v1/checks"

    @property
    def is_lookup(self) -> bool:
        """A hash lookup: one (GET ?sha256=) or a batch (POST /v1/lookups)."""
        return ((self.method == "GET" and self.path == "/v1/checks" and "sha256" in self.query)
                or (self.method == "POST" and self.path == "/v1/lookups"))

    @property
    def hashes(self) -> list[str]:
        """The SHA-256s a lookup asked about."""
        if self.method == "GET":
            return [self.query["sha256"]] if "sha256" in self.query else []
        return json.loads(self.body)["sha256"] if self.is_lookup else []

    @property
    def page_url(self) -> str | None:
        if self.method == "GET":
            return self.query.get("page_url")
        return json.loads(self.body).get("page_url")


class Site:
    def __init__(self, service_url: str, image_dir: Path):
        self.service_url = service_url
        self.image_dir = image_dir
        self.pages: dict[str, str] = {}
        self.seen: list[Seen] = []
        self.signin_token = ""
        self.image_hits: dict[str, int] = {}  # requests for each image of the pages origin
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []
        self.pages_url = self.proxy_url = ""

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Site:
        self._thread.start()
        self.pages_url, self.proxy_url = self._call(self._start())
        return self

    def __exit__(self, *exc) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _start(self) -> tuple[str, str]:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        pages = web.Application()
        pages.router.add_get("/page/{name}", self._page)
        pages.router.add_get("/img/{name}", self._image)
        pages.router.add_get("/private/{name}", self._private)
        pages.router.add_get("/signin", self._signin)  # not the service's: must be ignored
        proxy = web.Application(client_max_size=64 * 1024 * 1024)
        proxy.router.add_get("/signin", self._signin)
        proxy.router.add_route("*", "/{tail:.*}", self._forward)
        urls = []
        for app in (pages, proxy):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        return urls[0], urls[1]

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        await self._http.close()

    # -- the pages origin -------------------------------------------------------------------

    def add_page(self, name: str, body: str) -> str:
        self.pages[name] = body
        return f"{self.pages_url}/page/{name}"

    async def _page(self, request: web.Request) -> web.Response:
        body = self.pages.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        resp = web.Response(text=body, content_type="text/html")
        resp.set_cookie(*COOKIE, path="/", httponly=True)
        return resp

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = Path(request.match_info["name"]).name
        self.image_hits[name] = self.image_hits.get(name, 0) + 1
        path = self.image_dir / name
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def _private(self, request: web.Request) -> web.StreamResponse:
        if request.cookies.get(COOKIE[0]) != COOKIE[1]:
            raise web.HTTPForbidden(text="sign in first")
        return await self._image(request)

    # -- the proxy origin -------------------------------------------------------------------

    async def _signin(self, request: web.Request) -> web.Response:
        token = html.escape(self.signin_token, quote=True)
        return web.Response(content_type="text/html", text=(
            "<!doctype html><title>Sign in</title><h1>You are signed in</h1>"
            f"<p>Your session token: <code data-realcheck-token=\"{token}\">{token}</code></p>"))

    async def _forward(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._http.request(request.method, self.service_url + request.rel_url.path_qs,
                                      headers=headers, data=body or None,
                                      allow_redirects=False) as upstream:
            data = await upstream.read()
            self.seen.append(Seen(request.method, request.path, dict(request.query),
                                  upstream.status, body, started, time.monotonic()))
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, body=data, headers=out)

    def requests_since(self, mark: int) -> list[Seen]:
        return self.seen[mark:]

    @staticmethod
    def most_at_once(seen: list[Seen]) -> int:
        """The most requests the service was handling at the same time."""
        events = sorted([(s.started, 1) for s in seen] + [(s.ended, -1) for s in seen])
        now = peak = 0
        for _, step in events:
            now += step
            peak = max(peak, now)
        return peak


def copy_images(sources: list[Path], folder: Path) -> list[str]:
    """Copies the shared images to ``folder`` as img000.jpg, ...; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, src in enumerate(sources):
        name = f"img{i:03d}{src.suffix.lower()}"
        shutil.copyfile(src, folder / name)
        names.append(name)
    return names


def page_html(title: str, images: list[str], *, size: int = 160, below: list[str] = (),
              small: list[str] = (), private: list[str] = (), head: str = "", extra: str = "") -> str:
    """A test page: face images in view, tiny ones, cookie-protected ones and ones far below
    the fold; ``head`` and ``extra`` are added as they are (styles, scripts, frames). The page's
    own style carries the nonce ``rc``, so ``head`` may add a strict Content-Security-Policy."""
    def img(src: str, s: int = size) -> str:
        return f'<img src="{src}" width="{s}" height="{s}" alt="face">'
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style nonce='rc'>body{font:15px system-ui;margin:16px;background:#f4f4f5}"
             ".grid{display:flex;flex-wrap:wrap;gap:10px} img{object-fit:cover;border-radius:6px}"
             "h1{font-size:20px} .spacer{height:3000px}</style>", head, "</head><body>",
             f"<h1>{html.escape(title)}</h1><div class='grid' id='grid'>"]
    parts += [img(f"/img/{n}") for n in images]
    parts += [img(f"/private/{n}") for n in private]
    parts += [img(f"/img/{n}", 48) for n in small]
    parts.append("</div>")
    parts.append(extra)
    if below:
        parts.append("<div class='spacer'></div><div id='below'>")
        parts += [img(f"/img/{n}") for n in below]
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def launch(playwright, user_data_dir: Path, *, timeout_s: float = 30):
    """Chromium with the unpacked extension: (context, service worker, extension id)."""
    ext = str(EXTENSION_DIR)
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=chromium_path(), headless=False,
        viewport={"width": 1280, "height": 800},
        args=[*CHROMIUM_ARGS, f"--disable-extensions-except={ext}", f"--load-extension={ext}"])
    workers = context.service_workers
    worker = workers[0] if workers else context.wait_for_event("serviceworker",
                                                               timeout=timeout_s * 1000)
    return context, worker, worker.url.split("/")[2]


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Polls ``predicate()`` until it returns something truthy; fails with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)

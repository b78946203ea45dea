"""The service's own web pages: dashboard, sign-in, help, and their static files.

Pages hold no data: the dashboard fetches everything from the API with the session token, the
help page is rendered here from the published FAQ entries.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from aiohttp import web

from service import faq
from service.checks import limits
from service.errors import not_found
from service.keys import DB, DETECTOR

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.(css|js|svg|png|ico)$")
TYPES = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml", "png": "image/png",
         "ico": "image/x-icon"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self';"
                               " script-src 'self'; connect-src 'self'; frame-ancestors 'none';"
                               " base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page_response(name: str, status: int = 200, **values: str) -> web.Response:
    """A page from ``static/`` with its ``{{key}}`` slots filled (values are HTML already)."""
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers=SECURITY_HEADERS)


_page = page_response


async def landing(request: web.Request) -> web.Response:
    return _page("index.html")


async def favicon(request: web.Request) -> web.Response:
    return web.Response(body=(STATIC_DIR / "favicon.png").read_bytes(), content_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400"})


async def dashboard(request: web.Request) -> web.Response:
    return _page("dashboard.html")


async def signin(request: web.Request) -> web.Response:
    return _page("signin.html")


def _faq_html(entries: list[dict]) -> str:
    if not entries:
        return '<p class="muted">No questions have been answered here yet.</p>'
    parts = []
    for e in entries:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", e["answer"]) if p.strip()]
        body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
        parts.append(f'<details class="faq" id="faq-{e["id"]}"><summary>{html.escape(e["question"])}'
                     f"</summary>{body}</details>")
    return "\n".join(parts)


async def help_page(request: web.Request) -> web.Response:
    entries = await faq.entries(request.app[DB], published_only=True)
    ensemble = request.app[DETECTOR].ensemble
    th = limits.thresholds(ensemble)
    return _page("help.html", faq=_faq_html(entries),
                 limits="".join(f"<li>{html.escape(t)}</li>" for t in limits.limits_text(ensemble)),
                 fake_from=f"{th['fake_from']:.2f}", real_below=f"{th['real_below']:.2f}")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise not_found("no such file")
    return web.Response(body=path.read_bytes(), content_type=TYPES[name.rsplit(".", 1)[1]],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

"""Small helpers the handlers share: reading bodies within limits, paging, rate limits."""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web

from service.auth.tokens import is_text
from service.detection.heatmap import render_stored
from service.errors import ApiError, bad_request
from service.keys import POOLS, RATE_LIMITER

MAX_TEXT_FIELD = 4096
#: integers the database stores (SQLite and PostgreSQL BIGINT): larger ones are refused
MAX_INT = 2**63 - 1


def _field(name: str, value):
    """A field's value as handlers take it. Refused: what json.loads accepts but the database
    cannot store (lone surrogates, valid JSON escapes but not Unicode text; integers past 64
    bits). A number with no fraction (``3.0``) is the integer it equals, as in JSON Schema."""
    if isinstance(value, str) and not is_text(value):
        raise bad_request("bad_json", f"{name} is not valid Unicode text")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value <= MAX_INT:
        raise bad_request("bad_json", f"{name} is an integer larger than 64 bits")
    return value


def refuse_nul(value: str, where: str) -> None:
    """400 ``bad_value`` when ``value`` holds a NUL character: no text the service stores or
    looks up may hold one (PostgreSQL text cannot; SQLite would store it), so it is refused
    alike on both backends, where the request is read."""
    if "\x00" in value:
        raise _nul_error(where)


def _nul_error(where: str) -> ApiError:
    return bad_request("bad_value", f"{where} holds a NUL character (\\u0000), which no text"
                                    " the service takes may hold")


def refuse_nul_in_params(request: web.Request) -> None:
    """NUL in a path parameter or a query parameter's name or value: 400 ``bad_value`` (the
    route table's guard calls this before every handler)."""
    for name, value in request.match_info.items():
        refuse_nul(value, f"the path parameter {name}")
    for name, value in request.query.items():
        refuse_nul(name, "a query parameter's name")
        refuse_nul(value, f"the query parameter {name}")


def _holds_nul(value) -> bool:
    """Whether any string in a parsed JSON value (keys included) holds a NUL character."""
    stack = [value]
    while stack:  # a loop, not recursion: the body may nest as deep as json.loads allows
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


#: the body limit of routes that take small JSON bodies (``Route.max_body``)
SMALL_BODY = 256 * 1024
#: the body limit of the route being served (set by the route table's guard)
BODY_LIMIT = web.RequestKey("body_limit", int)
#: seconds a small body may take to arrive (a client that stalls mid-body is not waited for)
BODY_TIMEOUT_S = 30.0


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the route's limit (413) and ``BODY_TIMEOUT_S`` (408)."""
    limit = request.get(BODY_LIMIT, SMALL_BODY)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError as e:
        raise ApiError(408, "body_timeout",
                       f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s",
                       close=True) from e
    return b"".join(chunks)


async def read_json(request: web.Request, fields: tuple[str, ...]) -> dict:
    """The JSON object's ``fields`` that are present (others are ignored), each checked to be
    storable; 400 ``bad_json`` for anything that is not a JSON object (however deep)."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        text = (await read_body(request)).decode("utf-8")
        body = json.loads(text)
    except RecursionError as e:
        raise bad_request("bad_json", "the body is nested too deeply") from e
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, a number over 4300 digits
        raise bad_request("bad_json", f"the body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise bad_request("bad_json", "the body must be a JSON object")
    for k, v in body.items():
        if _holds_nul(k) or _holds_nul(v):
            raise _nul_error("a key of the JSON body" if "\x00" in k else f"the JSON field {k}")
    return {k: _field(k, body[k]) for k in fields if k in body}


def query_int(request: web.Request, name: str, default: int | None = None,
              minimum: int = 0, maximum: int = MAX_INT) -> int | None:
    """An integer query parameter within ``minimum..maximum`` (400 ``bad_query`` otherwise)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise bad_request("bad_query", f"{name} must be an integer") from e
    if not minimum <= value <= maximum:
        raise bad_request("bad_query", f"{name} must be {minimum}..{maximum}")
    return value


def path_int(request: web.Request, name: str) -> int | None:
    """An integer id from the path, or None when it is not one a row could have."""
    try:
        value = int(request.match_info[name])
    except ValueError:
        return None
    return value if 0 < value <= MAX_INT else None


def too_large(limit: int) -> ApiError:
    """413; the connection is closed after it, so the rest of the body is never waited for."""
    return ApiError(413, "payload_too_large", f"the request body is larger than {limit} bytes",
                    close=True)


#: what a lookup by SHA-256 costs against the per-user check budget (no pixels, no model run)
LOOKUP_COST = 0.1


async def rate_limit(request: web.Request, key: str, cost: float = 1.0) -> None:
    wait = await request.app[RATE_LIMITER].take(key, cost)
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many checks; slow down",
                       retry_after_s=round(wait, 2))


def page_args(request: web.Request, default: int = 50, maximum: int = 200) -> tuple[int, int]:
    limit = query_int(request, "limit", default, 1, maximum)
    offset = query_int(request, "offset", 0, 0, MAX_INT)
    return limit, offset


#: an absolute http(s) URL with a host, no spaces or control characters anywhere (the OpenAPI
#: schema states the same pattern: explicit ranges read alike in Python and ECMAScript)
WEB_URL_PATTERN = r"[Hh][Tt][Tt][Pp][Ss]?://[^/?#\x00-\x20\x7f][^\x00-\x20\x7f]*"
_WEB_URL_RE = re.compile(WEB_URL_PATTERN)


def optional_url(value) -> str | None:
    """A page or image address as given, or None; only http and https (a ``javascript:`` or
    ``data:`` address would become a live link in the dashboard and in mails)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise bad_request("bad_field", "page_url and source_url must be strings up to 2048")
    if not is_web_url(value):
        raise bad_request("bad_url_scheme",
                          "page_url and source_url must be absolute http:// or https:// URLs")
    return value


def is_web_url(value: str) -> bool:
    return bool(_WEB_URL_RE.fullmatch(value)) and is_text(value)


async def heatmap_response(request: web.Request, row) -> web.Response:
    """The heatmap PNG of a stored image, rendered in the heatmap pool."""
    png = await request.app[POOLS].heatmaps.run(render_stored, row)
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

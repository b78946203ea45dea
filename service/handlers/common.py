"""Small helpers the handlers share: reading bodies within limits, paging, rate limits."""

from __future__ import annotations

import asyncio
import json

from aiohttp import BodyPartReader, web

from service.detection.heatmap import render_stored
from service.errors import ApiError, bad_request
from service.keys import RATE_LIMITER, SETTINGS

MAX_TEXT_FIELD = 4096


async def read_json(request: web.Request) -> dict:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad_request("bad_json", f"the body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise bad_request("bad_json", "the body must be a JSON object")
    return body


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body is larger than {limit} bytes")


async def read_multipart(request: web.Request, file_field: str) -> tuple[bytes | None, dict]:
    """The file field's bytes and the other (text) fields, within the body limit."""
    limit = request.app[SETTINGS].max_body_bytes
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as e:
        raise bad_request("bad_multipart", "the multipart body cannot be read") from e
    data, fields, total = None, {}, 0
    while True:
        try:
            part = await reader.next()
        except ValueError as e:
            raise bad_request("bad_multipart", f"the multipart body is malformed: {e}") from e
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise bad_request("bad_multipart", "nested multipart parts are not accepted")
        chunks = []
        while chunk := await part.read_chunk(65536):
            total += len(chunk)
            if total > limit:
                raise too_large(limit)
            chunks.append(chunk)
        value = b"".join(chunks)
        if part.name == file_field and data is None:
            data = value
        elif part.name and len(value) <= MAX_TEXT_FIELD:
            fields[part.name] = value.decode("utf-8", "replace")
    return data, fields


def check_length(request: web.Request) -> None:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)


#: what a lookup by SHA-256 costs against the per-user check budget (no pixels, no model run)
LOOKUP_COST = 0.1


async def rate_limit(request: web.Request, key: str, cost: float = 1.0) -> None:
    wait = await request.app[RATE_LIMITER].take(key, cost)
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many checks; slow down",
                       retry_after_s=round(wait, 2))


def page_args(request: web.Request, default: int = 50, maximum: int = 200) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", default))
        offset = int(request.query.get("offset", 0))
    except ValueError as e:
        raise bad_request("bad_query", "limit and offset must be integers") from e
    if not 1 <= limit <= maximum or offset < 0:
        raise bad_request("bad_query", f"limit must be 1..{maximum} and offset >= 0")
    return limit, offset


def optional_url(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise bad_request("bad_field", "page_url and source_url must be strings up to 2048")
    return value


async def heatmap_response(row) -> web.Response:
    """The heatmap PNG of a stored image, rendered off the event loop."""
    png = await asyncio.get_running_loop().run_in_executor(None, render_stored, row)
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

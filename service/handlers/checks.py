"""HTTP handlers for checks and the older ``/predict`` shape (thin: the work is in CheckService)."""

from __future__ import annotations

import re

from aiohttp import web

from service.auth.identity import caller
from service.checks.fetch import fetch_image
from service.detection.preprocess import ImageError
from service.errors import ApiError, bad_request, not_found
from service.handlers.common import (
    LOOKUP_COST,
    check_length,
    heatmap_response,
    is_web_url,
    optional_url,
    page_args,
    rate_limit,
    read_json,
    read_multipart,
)
from service.keys import CHECKS, FETCH_HTTP, SETTINGS

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


async def _image_from_request(request: web.Request) -> tuple[bytes, dict]:
    check_length(request)
    ctype = request.content_type
    if ctype == "multipart/form-data":
        data, fields = await read_multipart(request, "image")
        if data is None:
            raise bad_request("missing_image", "send the image in a multipart field named 'image'")
        return data, fields
    if ctype == "application/json":
        body = await read_json(request, ("url", "page_url"))
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise bad_request("missing_url", "send {\"url\": \"https://...\"} or an image upload")
        # Refuse bad fields before fetching anything (the url itself: fetch_image's check_url).
        page_url = optional_url(body.get("page_url"))
        if len(url) > 2048:
            raise bad_request("bad_field", "the url may have at most 2048 characters")
        s = request.app[SETTINGS]
        data = await fetch_image(
            request.app[FETCH_HTTP], url, max_bytes=s.max_body_bytes, timeout_s=s.fetch_timeout_s,
            max_redirects=s.fetch_max_redirects, allow_private=s.fetch_allow_private)
        return data, {"source_url": url if is_web_url(url) else None, "page_url": page_url}
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return await request.read(), dict(request.query)
    raise ApiError(415, "unsupported_media_type",
                   "send multipart/form-data with an 'image' field, JSON with a 'url', or image bytes")


async def _run_check(request: web.Request) -> dict:
    user = caller(request)
    await rate_limit(request, user.id)
    data, fields = await _image_from_request(request)
    try:
        return await request.app[CHECKS].check(
            data, user.id, page_url=optional_url(fields.get("page_url")),
            source_url=optional_url(fields.get("source_url")))
    except ImageError as e:
        raise bad_request(e.code, e.message) from e


async def create_check(request: web.Request) -> web.Response:
    """Check an image: multipart ``image``, JSON ``{"url": ...}`` or raw image bytes."""
    return web.json_response(await _run_check(request), status=201)


async def predict(request: web.Request) -> web.Response:
    """The seed systems' shape: multipart ``image`` -> ``{"result", "confidence"}``."""
    check = await _run_check(request)
    if check["verdict"] == "no_face":
        return web.json_response({"result": "NO_FACE", "confidence": None})
    return web.json_response({"result": check["label"], "confidence": check["confidence"]})


async def _own_check(request: web.Request) -> dict:
    user = caller(request)
    check = await request.app[CHECKS].get(request.match_info["check_id"])
    # Another user's check answers 404, not 403: its existence is not revealed either.
    if check is None or (check["user_id"] != user.id and not user.has("moderator")):
        raise not_found("no such check")
    return check


async def get_check(request: web.Request) -> web.Response:
    check = await _own_check(request)
    check.pop("user_id", None)
    return web.json_response(check)


async def list_or_lookup(request: web.Request) -> web.Response:
    """``?sha256=`` answers from the store without the image; otherwise the caller's checks."""
    user = caller(request)
    checks = request.app[CHECKS]
    page_url = optional_url(request.query.get("page_url"))
    sha = request.query.get("sha256")
    if sha is not None:
        sha = sha.lower()
        if not SHA256_RE.match(sha):
            raise bad_request("bad_sha256", "sha256 must be 64 hexadecimal characters")
        await rate_limit(request, user.id, LOOKUP_COST)
        check = await checks.lookup(sha, user.id, page_url=page_url)
        if check is None:
            raise not_found("this image has not been checked yet: send it")
        return web.json_response(check)
    limit, offset = page_args(request)
    try:
        before = float(request.query["before"]) if "before" in request.query else None
    except ValueError as e:
        raise bad_request("bad_query", "before must be a timestamp") from e
    items = await checks.list_for(user.id, limit, before, offset)
    return web.json_response({"items": items, "next_before": items[-1].get("last_seen_at")
                              if len(items) == limit else None})


#: most hashes one batch lookup may ask about
MAX_LOOKUP_BATCH = 500


async def lookup_many(request: web.Request) -> web.Response:
    """``{"sha256": [...], "page_url"}``: the stored result of each image, or null if unknown.

    One request for a page of images instead of one per image; each hash costs what a single
    lookup costs against the rate limit.
    """
    user = caller(request)
    body = await read_json(request, ("sha256", "page_url"))
    hashes = body.get("sha256")
    if not isinstance(hashes, list) or not hashes or len(hashes) > MAX_LOOKUP_BATCH:
        raise bad_request("bad_sha256", f"sha256 must be a list of 1..{MAX_LOOKUP_BATCH} hashes")
    wanted = []
    for sha in hashes:
        if not isinstance(sha, str) or not SHA256_RE.match(sha.lower()):
            raise bad_request("bad_sha256", "each sha256 must be 64 hexadecimal characters")
        wanted.append(sha.lower())
    wanted = list(dict.fromkeys(wanted))
    page_url = optional_url(body.get("page_url"))
    await rate_limit(request, user.id, LOOKUP_COST * len(wanted))
    checks = request.app[CHECKS]
    results = {sha: await checks.lookup(sha, user.id, page_url=page_url) for sha in wanted}
    return web.json_response({"results": results,
                              "unknown": [sha for sha, c in results.items() if c is None]})


async def heatmap(request: web.Request) -> web.Response:
    check = await _own_check(request)
    if check.get("image_sent") is False:
        raise ApiError(404, "no_image", "this check was answered from the image's SHA-256 alone:"
                       " send the image itself to see where the detectors looked")
    row = await request.app[CHECKS].heatmap_inputs(check["sha256"])
    if row is None or not row["thumbnail"]:
        raise not_found("no heatmap is stored for this image")
    return await heatmap_response(request, row)



"""HTTP handlers for checks and the older ``/predict`` shape (thin: the work is in CheckService)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from service.auth.identity import caller
from service.checks.fetch import fetch_image
from service.detection.preprocess import ImageError
from service.errors import ApiError, bad_request, not_found
from service.handlers.common import (
    BODY_LIMIT,
    LOOKUP_COST,
    MAX_TEXT_FIELD,
    heatmap_response,
    is_web_url,
    optional_url,
    page_args,
    query_int,
    rate_limit,
    read_json,
    refuse_nul,
    too_large,
)
from service.keys import CHECKS, FETCH_HTTP, POOLS, SETTINGS, VIDEO
from service.video import store as videos
from service.video.decode import VideoError, sniff_video
from service.video.service import parse_fps

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: highest track number ``?track=`` takes (tracks are numbered from 0)
MAX_TRACK = 10_000


@dataclass
class Upload:
    """What a check request carried: bytes (an image or a video), or a frame sequence."""

    data: bytes | None
    fields: dict
    frames: list[bytes] | None = None
    video_field: bool = False  # sent as a video (field ``video``, a video/* type)


async def read_upload(request: web.Request) -> Upload:
    """The multipart body: the file in ``image`` or ``video``, or repeated ``frame`` parts, and
    the text fields; within the route's body limit and the frame budget."""
    limit = request.get(BODY_LIMIT, request.app[SETTINGS].max_body_bytes)
    max_frames = request.app[SETTINGS].video_max_frames
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as e:
        raise bad_request("bad_multipart", "the multipart body cannot be read") from e
    data, name, frames, fields, total = None, None, [], {}, 0
    while True:
        try:
            part = await reader.next()
        except (ValueError, HttpProcessingError) as e:
            raise bad_request("bad_multipart", f"the multipart body is malformed: {e}") from e
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise bad_request("bad_multipart", "nested multipart parts are not accepted")
        if part.name == "frame" and len(frames) >= max_frames:
            raise ApiError(400, "too_many_frames", f"more than {max_frames} frames", close=True)
        chunks = []
        while chunk := await part.read_chunk(65536):
            total += len(chunk)
            if total > limit:
                if part.name == "video":
                    raise ApiError(413, "video_too_large", f"the video is larger than {limit}"
                                   " bytes", close=True)
                raise too_large(limit)
            chunks.append(chunk)
        value = b"".join(chunks)
        if part.name in ("image", "video") and data is None:
            data, name = value, part.name
        elif part.name == "frame":
            frames.append(value)
        elif part.name and len(value) <= MAX_TEXT_FIELD:  # a text field (the files are bytes)
            refuse_nul(part.name, "a form field's name")
            fields[part.name] = value.decode("utf-8", "replace")
            refuse_nul(fields[part.name], f"the form field {part.name}")
    if frames and data is not None:
        raise bad_request("bad_multipart", "send either a file ('image' or 'video') or 'frame'"
                          " parts, not both")
    return Upload(data, fields, frames or None, video_field=name == "video")


async def _upload_from_request(request: web.Request) -> Upload:
    # The declared length was held to this route's limit by the route table's guard.
    ctype = request.content_type
    s = request.app[SETTINGS]
    if ctype == "multipart/form-data":
        upload = await read_upload(request)
        if upload.data is None and upload.frames is None:
            raise bad_request("missing_image", "send the image in a multipart field named"
                              " 'image' (a video: 'image' or 'video'; a frame sequence: 'frame')")
        return upload
    if ctype == "application/json":
        body = await read_json(request, ("url", "page_url"))
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise bad_request("missing_url", "send {\"url\": \"https://...\"} or an image upload")
        # Refuse bad fields before fetching anything (the url itself: fetch_image's check_url).
        page_url = optional_url(body.get("page_url"))
        if len(url) > 2048:
            raise bad_request("bad_field", "the url may have at most 2048 characters")
        limit = max(s.max_body_bytes, s.video_max_bytes)
        try:
            data = await fetch_image(
                request.app[FETCH_HTTP], url, max_bytes=limit, timeout_s=s.fetch_timeout_s,
                max_redirects=s.fetch_max_redirects, allow_private=s.fetch_allow_private)
        except ApiError as e:  # over the larger of the two limits: over the video one too
            if e.status == 413 and s.video_max_bytes >= s.max_body_bytes:
                raise ApiError(413, "video_too_large", f"the file at the URL is larger than"
                               f" {limit} bytes") from e
            raise
        return Upload(data, {"source_url": url if is_web_url(url) else None,
                             "page_url": page_url})
    if ctype.startswith(("image/", "video/")) or ctype == "application/octet-stream":
        return Upload(await request.read(), dict(request.query),
                      video_field=ctype.startswith("video/"))
    raise ApiError(415, "unsupported_media_type",
                   "send multipart/form-data with an 'image' field, JSON with a 'url', or image"
                   " or video bytes")


def _video_error(e: VideoError) -> ApiError:
    return ApiError(e.status, e.code, e.message)


async def _image_check(request: web.Request, user, data: bytes, fields: dict) -> dict:
    limit = request.app[SETTINGS].max_body_bytes
    if len(data) > limit:  # the route accepts a video's size; an image has its own limit
        raise ApiError(413, "payload_too_large", f"the image is larger than {limit} bytes")
    try:
        return await request.app[CHECKS].check(
            data, user.id, page_url=optional_url(fields.get("page_url")),
            source_url=optional_url(fields.get("source_url")))
    except ImageError as e:
        raise bad_request(e.code, e.message) from e


async def _run_check(request: web.Request) -> dict:
    """An image check (the older ``/predict`` shape takes images only)."""
    user = caller(request)
    await rate_limit(request, user.id)
    upload = await _upload_from_request(request)
    if upload.data is None:
        raise bad_request("missing_image", "send the image in a multipart field named 'image'")
    return await _image_check(request, user, upload.data, upload.fields)


async def create_check(request: web.Request) -> web.Response:
    """Check an image (201), or start a video or frame-sequence check (202 and its job)."""
    user = caller(request)
    await rate_limit(request, user.id)
    upload = await _upload_from_request(request)
    fields = upload.fields
    page_url = optional_url(fields.get("page_url"))
    source_url = optional_url(fields.get("source_url"))
    video = request.app[VIDEO]
    capture = fields.get("capture")
    if capture is not None and capture not in ("canvas", "tab"):
        raise bad_request("bad_field", "capture must be 'canvas' or 'tab'")
    try:
        if "fps" in fields:  # a frame sequence's; refused when wrong, whatever else came
            parse_fps(fields["fps"])
        if upload.frames is not None:
            started = await video.start_frames(upload.frames, fields.get("fps"), user.id,
                                               capture=capture, page_url=page_url,
                                               source_url=source_url)
        else:
            fmt = sniff_video(upload.data)
            if fmt is None:
                if upload.video_field:
                    if not upload.data:
                        raise bad_request("empty_body", "the video is empty")
                    raise bad_request("bad_video", "not an MP4, WebM or MOV video")
                return web.json_response(
                    await _image_check(request, user, upload.data, fields), status=201)
            started = await video.start_video(upload.data, fmt, user.id, page_url=page_url,
                                              source_url=source_url)
    except VideoError as e:
        raise _video_error(e) from e
    if started.check is not None:
        return web.json_response(_public(started.check), status=201)
    job = started.job
    job.pop("user_id", None)
    return web.json_response({"job": job}, status=202,
                             headers={"Location": f"/v1/jobs/{job['id']}"})


def _public(check: dict) -> dict:
    check.pop("user_id", None)
    return check


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
    if "track" in request.query:
        return await _track_heatmap(request, check)
    row = await request.app[CHECKS].heatmap_inputs(check["sha256"])
    if row is None or not row["thumbnail"]:
        raise not_found("no heatmap is stored for this image")
    return await heatmap_response(request, row)




async def _track_heatmap(request: web.Request, check: dict) -> web.Response:
    """A video's heatmap of one track's decisive frame (``?track=N``)."""
    track = query_int(request, "track", 0, 0, MAX_TRACK)
    if check.get("media") != "video":
        raise not_found("an image check has no tracks")
    row = await videos.track_heatmap_inputs(request.app[CHECKS].db, check["sha256"], track)
    if row is None or not row["thumbnail"] or row["cams"] is None:
        raise not_found("no such track in this video")
    png = await request.app[POOLS].heatmaps.run(videos.render_track, row)
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})


async def frame_thumbnail(request: web.Request) -> web.Response:
    """A small JPEG of one sampled frame of a video check (the timeline strips)."""
    check = await _own_check(request)
    try:
        index = int(request.match_info["frame_index"])
    except ValueError:
        index = -1
    if check.get("media") != "video" or check.get("image_sent") is False or index < 0:
        raise not_found("no such frame")
    jpeg = await videos.frame_thumbnail(request.app[CHECKS].db, check["sha256"], index)
    if not jpeg:
        raise not_found("no such frame")
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})

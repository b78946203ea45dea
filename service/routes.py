"""Every route in one table: method, path, handler, the least role it needs, and its summary.

The table is enforced, not only documented: ``add_routes`` wraps each handler so that the
caller's role is checked (401/403) and the declared body limit applied (413 at once from the
``Content-Length``) before the handler runs; handlers read the caller with ``caller(request)``.
It also produces the OpenAPI description and drives the role tests, so a route cannot be added
without saying who may call it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from service import __version__, api_schemas
from service.auth.identity import require_role
from service.errors import ApiError
from service.handlers import account, admin, checks, faq, jobs, meta, moderation, pages, shares
from service.handlers.common import BODY_LIMIT, SMALL_BODY, refuse_nul_in_params, too_large
from service.keys import SETTINGS


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable
    role: str  # "public" | "user" | "moderator" | "admin"
    summary: str
    request: str | None = None  # "multipart" (an image) | the JSON body's schema | None
    produces: str = "application/json"
    tags: tuple[str, ...] = field(default=())
    #: largest request body in bytes; None: the service's upload limit (``max_body_bytes``);
    #: MEDIA_BODY: the larger of that and the video limit (``video_max_bytes``)
    max_body: int | None = SMALL_BODY
    #: the success status and its body's schema (None: not JSON, see ``produces``)
    status: int = 200
    returns: str | None = None
    #: error statuses this route answers beyond those its role, body and parameters imply
    errors: tuple[int, ...] = ()
    #: another success it may answer: (status, the body's schema), e.g. 202 and a job
    also: tuple[int, str] | None = None


#: ``Route.max_body`` of routes that take images and videos
MEDIA_BODY = -1


async def openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI description (served from here: the table is defined in this module)."""
    return web.json_response(openapi_document())


ROUTES: list[Route] = [
    Route("GET", "/health", meta.health, "public", "Service status, loaded models and providers",
          returns="Health", tags=("meta",)),
    Route("GET", "/openapi.json", openapi, "public", "This API description", returns="OpenApi",
          tags=("meta",)),
    Route("GET", "/.well-known/jwks.json", meta.jwks, "public",
          "Public keys of the local token issuer", returns="Jwks", errors=(404,), tags=("auth",)),
    Route("POST", "/v1/checks", checks.create_check, "user",
          "Check an image (multipart 'image', JSON {url}, or image bytes): 201 and the check; a"
          " video (MP4, WebM, MOV: the same ways, or multipart 'video') or a frame sequence"
          " (multipart 'frame' parts and 'fps'): 202, its job and Location, or 201 when the"
          " same video was checked before", request="multipart",
          max_body=MEDIA_BODY, status=201, returns="Check", errors=(408, 429, 503),
          also=(202, "JobAnswer"), tags=("checks",)),
    Route("GET", "/v1/checks", checks.list_or_lookup, "user",
          "With ?sha256=: the stored result without sending the image; else your checks",
          returns="CheckOrList", errors=(404, 429), tags=("checks",)),
    Route("POST", "/v1/lookups", checks.lookup_many, "user",
          "Known results of many images by SHA-256 {sha256: [...], page_url} -> {results, unknown}",
          request="Lookup", returns="LookupAnswer", errors=(429,), tags=("checks",)),
    Route("GET", "/v1/checks/{check_id}", checks.get_check, "user", "A stored check",
          returns="Check", tags=("checks",)),
    Route("GET", "/v1/checks/{check_id}/heatmap.png", checks.heatmap, "user",
          "Where the detectors looked, over the image (a video: over the decisive frame of its"
          " most fake track, or of ?track=N)", produces="image/png", errors=(503,),
          tags=("checks",)),
    Route("GET", "/v1/checks/{check_id}/frames/{frame_index}.jpg", checks.frame_thumbnail,
          "user", "A video check's sampled frame (small JPEG, for the timeline)",
          produces="image/jpeg", tags=("checks",)),
    Route("GET", "/v1/jobs/{job_id}", jobs.get_job, "user",
          "A video check's job: status, progress {done, total}; when done the check",
          returns="JobAnswer", tags=("checks",)),
    Route("DELETE", "/v1/jobs/{job_id}", jobs.cancel_job, "user",
          "Cancel your queued or running job; 409 job_finished once it has ended",
          returns="JobAnswer", errors=(409,), tags=("checks",)),
    Route("POST", "/predict", checks.predict, "user",
          "Older seed-system shape: multipart 'image' -> {result, confidence}",
          request="multipart", max_body=None, returns="Prediction", errors=(408, 429, 503),
          tags=("checks",)),
]

# Moderation (issue 5): sign-in, reports and the flagged queue, administration, the web pages.
ROUTES += [
    Route("GET", "/signin", pages.signin, "public",
          "Sign-in page: register or sign in with email and password, copy the session token",
          produces="text/html", tags=("pages",)),
    Route("POST", "/v1/auth/register", account.register, "public",
          "Ask for an account {email, password}: a mail to the address, the same answer whether"
          " or not it has an account (local issuer only)",
          request="NewAccount", status=202, returns="RegistrationAnswer", errors=(404, 429, 503),
          tags=("auth",)),
    Route("POST", "/v1/auth/confirm", account.confirm, "public",
          "Finish registering {code (from the mail), password} -> {token, user}",
          request="Confirmation", status=201, returns="Session", errors=(401, 404, 409, 429, 503),
          tags=("auth",)),
    Route("POST", "/v1/auth/login", account.login, "public",
          "Sign in {email, password} -> {token, user}; locked after repeated failures",
          request="Credentials", returns="Session", errors=(401, 403, 404, 429, 503),
          tags=("auth",)),
    Route("GET", "/v1/me", account.me, "user", "Your account and alert settings",
          returns="User", tags=("account",)),
    Route("PATCH", "/v1/me", account.update_me, "user",
          "Change {email, email_alerts, queue_alerts}", request="OwnChanges", returns="User",
          errors=(409,), tags=("account",)),
    Route("POST", "/v1/checks/{check_id}/report", moderation.report_check, "user",
          "Report a wrong verdict on your check {note, page_url} -> {flag_id, status}",
          request="Report", status=201, returns="ReportAnswer", tags=("moderation",)),
    Route("GET", "/v1/moderation/items", moderation.list_items, "moderator",
          "The flagged queue: ?state=open|confirmed_fake|real|dismissed|all"
          "&sort=score|recent|reports&limit&offset", returns="ItemList", tags=("moderation",)),
    Route("GET", "/v1/moderation/items/{item_id}", moderation.get_item, "moderator",
          "One flagged item: faces, each detector's score, pages, reports, history",
          returns="Item", tags=("moderation",)),
    Route("GET", "/v1/moderation/items/{item_id}/image.jpg", moderation.item_image, "moderator",
          "The item's image (thumbnail)", produces="image/jpeg", tags=("moderation",)),
    Route("GET", "/v1/moderation/items/{item_id}/heatmap.png", moderation.item_heatmap,
          "moderator", "Where the detectors looked", produces="image/png", errors=(503,),
          tags=("moderation",)),
    Route("POST", "/v1/moderation/items/{item_id}/decision", moderation.decide, "moderator",
          "Decide {decision: fake|real|dismissed, note, version}; 409 if the version is stale",
          request="Decision", returns="Item", errors=(409,), tags=("moderation",)),
    Route("GET", "/v1/admin/users", admin.list_users, "admin",
          "Accounts: ?q=&role=&limit&offset", returns="UserList", tags=("admin",)),
    Route("PATCH", "/v1/admin/users/{user_id}", admin.update_user, "admin",
          "Change an account's {role, disabled}", request="UserChanges", returns="User",
          errors=(409,), tags=("admin",)),
    Route("DELETE", "/v1/admin/users/{user_id}", admin.delete_user, "admin",
          "Delete an account with its data", returns="Deleted", errors=(409,), tags=("admin",)),
    Route("GET", "/v1/admin/audit", admin.list_audit, "admin",
          "The audit trail, newest first: ?action=&actor=&target=&limit&before",
          returns="AuditList", tags=("admin",)),
    Route("GET", "/v1/admin/audit.csv", admin.export_audit, "admin",
          "The audit trail as CSV (same filters)", produces="text/csv", tags=("admin",)),
    Route("GET", "/v1/admin/hashlist.csv", admin.export_hash_list, "admin",
          "Decided items as a CSV hash list (pdq, verdict, note, decided_at, source, windows,"
          " faces: the face descriptors)",
          produces="text/csv", tags=("admin",)),
    Route("POST", "/v1/admin/hashlist", admin.import_hash_list, "admin",
          "Import a CSV hash list (text/csv) from ?source=; its entries act like decisions",
          request="csv", max_body=None, status=201, returns="HashListImport", errors=(400,),
          tags=("admin",)),
    Route("GET", "/v1/admin/outbox", admin.list_outbox, "admin",
          "Queued and sent email: ?state=pending|sending|sent|failed", returns="Outbox",
          tags=("admin",)),
    Route("POST", "/v1/admin/outbox/retry", admin.retry_outbox, "admin",
          "Send failed email again: {id} for one, {} for all", request="Retry",
          returns="Requeued", tags=("admin",)),
    Route("GET", "/v1/admin/faq", faq.admin_faq, "admin", "Every FAQ entry, drafts included",
          returns="FaqList", tags=("admin",)),
    Route("POST", "/v1/admin/faq", faq.create_faq, "admin",
          "Add an FAQ entry {question, answer, position, published}", request="NewFaqEntry",
          status=201, returns="FaqEntry", tags=("admin",)),
    Route("PATCH", "/v1/admin/faq/{faq_id}", faq.update_faq, "admin", "Change an FAQ entry",
          request="FaqChanges", returns="FaqEntry", tags=("admin",)),
    Route("DELETE", "/v1/admin/faq/{faq_id}", faq.delete_faq, "admin", "Remove an FAQ entry",
          returns="Deleted", tags=("admin",)),
    Route("GET", "/v1/faq", faq.public_faq, "public", "The published FAQ entries",
          returns="FaqList", tags=("help",)),
    Route("GET", "/help", pages.help_page, "public", "Help page with the FAQ",
          produces="text/html", tags=("pages",)),
    Route("GET", "/dashboard", pages.dashboard, "public",
          "Moderation dashboard (signs in with a session token)", produces="text/html",
          tags=("pages",)),
    Route("GET", "/", pages.landing, "public",
          "What Realcheck is, with links to sign-in, the dashboard, help and the extension",
          produces="text/html", tags=("pages",)),
    Route("GET", "/favicon.ico", pages.favicon, "public", "The icon", produces="image/png",
          tags=("pages",)),
    Route("GET", "/static/{name}", pages.static_file, "public", "The pages' CSS and scripts",
          produces="text/css, text/javascript, image/svg+xml, image/png, image/x-icon",
          tags=("pages",)),
]


# Share links (issue 10): the owner of a check makes an unguessable, revocable link to a page.
ROUTES += [
    Route("POST", "/v1/checks/{check_id}/share", shares.create_share, "user",
          "Make (or return) the share link of your check -> {url, token, created_at}",
          status=201, returns="Share", errors=(404,), tags=("checks",)),
    Route("GET", "/v1/checks/{check_id}/share", shares.get_share, "user",
          "Your check's live share link -> {share: {url, token, created_at} | null}",
          returns="ShareState", errors=(404,), tags=("checks",)),
    Route("DELETE", "/v1/checks/{check_id}/share", shares.revoke_share, "user",
          "Revoke your check's share links -> {revoked}", returns="Revoked", errors=(404,),
          tags=("checks",)),
    Route("GET", "/s/{token}", shares.share_page, "public",
          "A shared result: the image, the verdict, every face, the heatmap, the detectors' limits",
          produces="text/html", errors=(404,), tags=("pages",)),
    Route("GET", "/s/{token}/image.jpg", shares.share_image, "public",
          "The shared check's image (thumbnail)", produces="image/jpeg", errors=(404,),
          tags=("pages",)),
    Route("GET", "/s/{token}/heatmap.png", shares.share_heatmap, "public",
          "The shared check's heatmap", produces="image/png", errors=(404, 503),
          tags=("pages",)),
]


def guarded(route: Route) -> Callable:
    """The route's handler behind its role, its body limit and the check that no path or query
    parameter holds a NUL character (400 ``bad_value``; in this order: a caller without the role
    learns nothing about the body)."""
    handler = route.handler

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        if route.role != "public":
            await require_role(request, route.role)
        s = request.app[SETTINGS]
        limit = route.max_body or s.max_body_bytes
        if limit == MEDIA_BODY:  # JSON and image bytes keep the upload limit
            ctype = request.content_type
            big = ctype != "application/json" and not ctype.startswith("image/")
            limit = max(s.max_body_bytes, s.video_max_bytes) if big else s.max_body_bytes
        request[BODY_LIMIT] = limit
        if request.content_length is not None and request.content_length > limit:
            if route.max_body == MEDIA_BODY and request.content_type.startswith("video/"):
                raise ApiError(413, "video_too_large", f"the video is larger than {limit} bytes",
                               close=True)
            raise too_large(limit)
        refuse_nul_in_params(request)
        return await handler(request)

    return run


def add_routes(app: web.Application, routes: list[Route] = ROUTES) -> None:
    for r in routes:
        app.router.add_route(r.method, r.path, guarded(r))


_REASONS = {
    400: "Bad input: the error code says which (bad_json, bad_query, bad_field, ...);"
         " bad_value: text that holds a NUL character (anywhere: path, query, body)",
    401: "No token, or an invalid one (missing_token, token_expired, ...); wrong credentials",
    403: "The caller's role is too low (forbidden), or the account is disabled",
    404: "No such resource (or not yours)",
    408: "The request body did not arrive in time",
    409: "Conflicts with the current state (email_taken, a stale version, your own account)",
    413: "The request body is larger than this route accepts",
    415: "Wrong Content-Type for the body",
    429: "Too many requests: see Retry-After",
    503: "Busy, or the token issuer's keys are out of reach: try again",
}
_BINARY = {"type": "string", "format": "binary"}
_SUCCESS = {202: "Accepted: a job (see its Location)"}


def _error_statuses(r: Route) -> list[int]:
    codes = set(r.errors)
    if r.role != "public":
        codes |= {401, 403, 503}
    if r.request:
        codes |= {400, 408, 413, 415}
    if "{" in r.path:
        codes |= {400, 404}  # 400: a path parameter with a NUL character
    if (r.method, r.path) in api_schemas.QUERY:
        codes.add(400)
    return sorted(codes)


def _success(r: Route) -> dict:
    content = {}
    for media in r.produces.split(", "):
        if media == "application/json":
            content[media] = {"schema": api_schemas.ref(r.returns) if r.returns else {}}
        elif media.startswith("text/"):
            content[media] = {"schema": {"type": "string"}}
        else:
            content[media] = {"schema": _BINARY}
    return {"description": "Created" if r.status == 201 else "OK", "content": content}


def _request_body(r: Route) -> dict | None:
    if r.request is None:
        return None
    if r.request == "csv":
        return {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    if r.request == "multipart":
        return {"required": True, "content": {
            "multipart/form-data": {"schema": api_schemas.ref(
                "MediaUpload" if r.max_body == MEDIA_BODY else "ImageUpload")},
            "application/json": {"schema": api_schemas.ref("UrlCheck")},
            "application/octet-stream": {"schema": _BINARY},
            **({t: {"schema": _BINARY} for t in ("video/mp4", "video/webm", "video/quicktime")}
               if r.max_body == MEDIA_BODY else {})}}
    schema = api_schemas.SCHEMAS[r.request]
    return {"required": bool(schema.get("required") or schema.get("anyOf")),
            "content": {"application/json": {"schema": api_schemas.ref(r.request)}}}


def openapi_document(routes: list[Route] = ROUTES) -> dict:
    paths: dict = {}
    for r in routes:
        responses = {str(r.status): _success(r)}
        if r.also is not None:
            status, schema = r.also
            responses[str(status)] = {"description": _SUCCESS.get(status, "OK"), "content": {
                "application/json": {"schema": api_schemas.ref(schema)}}}
        for code in _error_statuses(r):
            responses[str(code)] = {"description": _REASONS[code], "content": {
                "application/json": {"schema": api_schemas.ref("Error")}}}
        op: dict = {
            "summary": r.summary,
            "operationId": r.handler.__name__ + "_" + r.method.lower(),
            "tags": list(r.tags),
            "responses": responses,
            "x-required-role": r.role,
        }
        if r.role != "public":
            op["security"] = [{"bearer": []}]
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"\{(\w+)\}", r.path)]
        params += api_schemas.QUERY.get((r.method, r.path), ())
        if params:
            op["parameters"] = params
        body = _request_body(r)
        if body:
            op["requestBody"] = body
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Realcheck", "version": __version__,
                 "description": "Checks whether faces in images are real or generated."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": api_schemas.SCHEMAS,
        },
    }

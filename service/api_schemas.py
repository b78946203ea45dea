"""The JSON schemas of the API's requests and answers, named, for the OpenAPI document.

The route table (``service.routes``) names which of these each route takes and answers; the
handlers validate the same rules (the fuzz test holds the two to each other).
"""

from __future__ import annotations

from service.auth.passwords import EMAIL_PATTERN, MAX_LENGTH, MIN_LENGTH
from service.auth.registration import CODE_MAX_LENGTH
from service.faq import MAX_POSITION
from service.handlers.checks import MAX_TRACK
from service.handlers.common import MAX_INT, WEB_URL_PATTERN
from service.settings import Settings
from service.text import VISIBLE_PATTERN
from service.video.service import MAX_SEQUENCE_FPS, MIN_FPS

NUMBER, INT, STR, BOOL = ({"type": "number"}, {"type": "integer"}, {"type": "string"},
                          {"type": "boolean"})
OBJECT = {"type": "object"}


def null(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: tuple[str, ...] = (), **properties) -> dict:
    return {"type": "object", "required": list(required), "properties": properties}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def items_of(name: str, **extra) -> dict:
    return obj(("items", *extra), items={"type": "array", "items": ref(name)}, **extra)


VERDICT = {"type": "string", "enum": ["real", "fake", "uncertain", "no_face"]}
WEB_URL = {"type": "string", "maxLength": 2048, "pattern": "^" + WEB_URL_PATTERN + "$"}
#: page_url and source_url: a web address, or empty (none)
OPTIONAL_URL = {"anyOf": [WEB_URL, {"type": "string", "maxLength": 0}]}
#: spaces around the address are dropped
EMAIL = {"type": "string", "pattern": "^ *" + EMAIL_PATTERN + " *$"}
#: text with at least one character that is not a space, a control or a format character
VISIBLE = VISIBLE_PATTERN
SAFE_INT = {"type": "integer", "minimum": -MAX_INT, "maximum": MAX_INT}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_INT}

SCHEMAS: dict[str, dict] = {
    "Error": obj(("error", "message"), error=STR, message=STR),
    "Health": obj(("status", "version", "trained", "providers", "models", "batching"),
                  status=STR, version=STR, trained=BOOL,
                  providers={"type": "array", "items": STR}, models=OBJECT, batching=OBJECT,
                  event_loop={"type": "string", "enum": ["asyncio", "uvloop"]},
                  video=obj(("sample_rate", "sample_seconds", "max_frames", "max_side", "max_pixels"),
                            sample_rate=NUMBER, sample_seconds=NUMBER, max_frames=INT,
                            max_side=INT, max_pixels=INT)),
    "Jwks": obj(("keys",), keys={"type": "array", "items": OBJECT}),
    "Face": obj(("box", "score", "verdict"),
                box={"type": "array", "items": INT}, region={"type": "array", "items": INT},
                score=null(NUMBER), verdict=VERDICT, label=null(STR), confidence=null(NUMBER),
                # each detector's P(fake) for the face; null: that detector did not run on it
                models={"type": "object", "additionalProperties": null(NUMBER)},
                too_small=BOOL, views=INT,
                # the face's aligned square runs off the picture's edge by more than the
                # ensemble's edge.max_outside: not judged (UNSURE)
                cut_off=BOOL,
                # the familiarity gate: unlike the faces the detectors learned from (never
                # FAKE); null: not measured
                unfamiliar=null(BOOL),
                # the agreement rule: whether every detector run on every face finds it fake
                # on its own at its own threshold (FAKE needs it); null: not measured
                confirmed=null(BOOL), note=null(STR)),
    "Check": obj(("id", "sha256", "verdict", "cached", "created_at", "heatmap_url"),
                 id=STR, sha256=STR, verdict=VERDICT, score=null(NUMBER), label=null(STR),
                 confidence=null(NUMBER), face_found=BOOL,
                 faces={"type": "array", "items": ref("Face")}, decisive_face=null(INT),
                 models=null(OBJECT), trained=BOOL, models_version=STR, width=INT, height=INT,
                 note=null(STR), warning=null(STR), detectors=OBJECT, moderation=null(OBJECT),
                 cached=BOOL, page_url=null(STR), source_url=null(STR), image_sent=BOOL,
                 created_at=NUMBER, heatmap_url=null(STR), elapsed_ms=NUMBER),
    "CheckOrList": {"anyOf": [ref("Check"), ref("CheckList")]},
    "Lookup": obj(("sha256",), sha256={"type": "array", "minItems": 1, "maxItems": 500,
                                       "items": {"type": "string",
                                                 "pattern": "^[0-9a-fA-F]{64}$"}},
                  page_url=null(OPTIONAL_URL)),
    "LookupAnswer": obj(("results", "unknown"),
                        results={"type": "object", "additionalProperties": null(ref("Check"))},
                        unknown={"type": "array", "items": STR}),
    "Share": obj(("url", "token", "created_at"), url=STR, token=STR, created_at=NUMBER),
    "ShareState": obj(("share",), share=null(ref("Share"))),
    "Revoked": obj(("revoked",), revoked=INT),
    "OpenApi": obj(("openapi", "info", "paths"), openapi=STR, info=OBJECT, paths=OBJECT),
    "CheckList": obj(("items", "next_before"), items={"type": "array", "items": ref("Check")},
                     next_before=null(NUMBER)),
    "Prediction": obj(("result", "confidence"), result=null(STR), confidence=null(NUMBER)),
    "UrlCheck": obj(("url",), url={"type": "string", "minLength": 1, "maxLength": 2048},
                    page_url=null(OPTIONAL_URL)),
    "ImageUpload": obj(("image",), image={"type": "string", "format": "binary"},
                       page_url=OPTIONAL_URL, source_url=OPTIONAL_URL),
    "Credentials": obj(("email", "password"), email=EMAIL,
                       password={"type": "string", "minLength": 1, "maxLength": MAX_LENGTH}),
    "NewAccount": obj(("email", "password"), email=EMAIL,
                      password={"type": "string", "minLength": MIN_LENGTH,
                                "maxLength": MAX_LENGTH}),
    "RegistrationAnswer": obj(("status", "message"), status=STR, message=STR),
    "Confirmation": obj(("code", "password"),
                        code={"type": "string", "minLength": 1, "maxLength": CODE_MAX_LENGTH},
                        password={"type": "string", "minLength": 1, "maxLength": MAX_LENGTH}),
    "User": obj(("id", "email", "role", "disabled"), id=STR, email=null(STR), role=STR,
                disabled=BOOL, email_alerts=BOOL, queue_alerts=BOOL, has_password=BOOL,
                created_at=NUMBER, last_seen_at=null(NUMBER), check_count=INT,
                locked_until=NUMBER),
    "Session": obj(("token", "token_type", "expires_in", "user"), token=STR, token_type=STR,
                   expires_in=INT, user=ref("User")),
    "OwnChanges": {**obj((), email=null(EMAIL), email_alerts=BOOL, queue_alerts=BOOL),
                   "anyOf": [{"required": ["email"]}, {"required": ["email_alerts"]},
                             {"required": ["queue_alerts"]}]},
    "Report": obj((), note=null({"type": "string", "maxLength": 2000}),
                  page_url=null(OPTIONAL_URL)),
    "ReportAnswer": obj(("flag_id", "status"), flag_id=STR, status=STR),
    "Item": obj(("id", "sha256", "state", "version", "pages", "decision"),
                id=STR, sha256=STR, state=STR, reason=STR, score=null(NUMBER),
                detector_verdict=null(STR), version=INT, check_count=INT, user_count=INT,
                report_count=INT, pages={"type": "array", "items": OBJECT},
                decision=null(OBJECT), created_at=NUMBER, queued_at=NUMBER,
                last_seen_at=NUMBER, image_url=STR, heatmap_url=STR, reports={"type": "array"},
                history={"type": "array"}),
    "ItemList": obj(("items", "total", "limit", "offset", "counts"),
                    items={"type": "array", "items": ref("Item")}, total=INT, limit=INT,
                    offset=INT, counts=OBJECT),
    "Decision": obj(("decision", "version"),
                    decision={"type": "string", "enum": ["fake", "real", "dismissed"]},
                    version=SAFE_INT, note=null({"type": "string", "maxLength": 2000})),
    "UserList": obj(("items", "total", "limit", "offset"),
                    items={"type": "array", "items": ref("User")}, total=INT, limit=INT,
                    offset=INT),
    "UserChanges": {**obj((), role={"type": "string", "enum": ["user", "moderator", "admin"]},
                          disabled=BOOL),
                    "anyOf": [{"required": ["role"]}, {"required": ["disabled"]}]},
    "Deleted": obj(("deleted",), deleted={}, removed=OBJECT),
    "AuditEntry": obj(("id", "at", "actor", "action"), id=INT, at=NUMBER, actor=null(STR),
                      actor_email=null(STR), action=STR, target=null(STR), detail={},
                      ip=null(STR)),
    "AuditList": items_of("AuditEntry", next_before=null(INT)),
    "Message": obj(("id", "kind", "recipient", "state", "attempts"), id=INT, kind=STR,
                   recipient=STR, subject=STR, state=STR, attempts=INT, last_error=null(STR),
                   created_at=NUMBER, next_attempt_at=null(NUMBER), sent_at=null(NUMBER)),
    "Outbox": obj(("items", "total", "counts", "smtp_enabled"),
                  items={"type": "array", "items": ref("Message")}, total=INT, counts=OBJECT,
                  smtp_enabled=BOOL),
    "Retry": obj((), id=null(ID)),
    "Requeued": obj(("requeued",), requeued=INT),
    "FaqEntry": obj(("id", "question", "answer", "position", "published"), id=INT,
                    question=STR, answer=STR, position=INT, published=BOOL,
                    created_at=NUMBER, updated_at=NUMBER),
    "FaqList": items_of("FaqEntry"),
    "NewFaqEntry": obj(("question", "answer"),
                       question={"type": "string", "maxLength": 300, "pattern": VISIBLE},
                       answer={"type": "string", "maxLength": 10_000, "pattern": VISIBLE},
                       position={"type": "integer", "minimum": -MAX_POSITION,
                                 "maximum": MAX_POSITION}, published=BOOL),
}
# Video checks (issue 13): the upload, the job, the video's part of a check.
_BIN = {"type": "string", "format": "binary"}
#: the default of the video_max_frames setting (the service refuses more frames than its own)
MAX_FRAMES_DEFAULT = Settings.video_max_frames
SCHEMAS["MediaUpload"] = {
    **obj((), image=_BIN, video=_BIN,
          frame={"type": "array", "items": _BIN, "maxItems": MAX_FRAMES_DEFAULT},
          fps={"type": "number", "minimum": MIN_FPS, "maximum": MAX_SEQUENCE_FPS},
          capture={"type": "string", "enum": ["canvas", "tab"]},
          page_url=OPTIONAL_URL, source_url=OPTIONAL_URL),
    "anyOf": [{"required": ["image"]}, {"required": ["video"]},
              {"required": ["frame", "fps"]}],
}
SCHEMAS["JobError"] = obj(("code", "message"), code=STR, message=STR)
SCHEMAS["Job"] = obj(
    ("id", "kind", "status", "progress", "check_id", "error", "created_at"),
    id=STR, kind={"type": "string", "enum": ["video", "frames"]},
    status={"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
    progress=obj(("done", "total"), done=INT, total=null(INT)),
    check_id=null(STR), error=null(ref("JobError")), created_at=NUMBER, updated_at=NUMBER,
    check=null(ref("Check")))
SCHEMAS["JobAnswer"] = obj(("job",), job=ref("Job"))
SCHEMAS["TimelinePoint"] = obj(("t", "frame_index", "score", "box"), t=NUMBER,
                               frame_index=INT, score=null(NUMBER),
                               box={"type": "array", "items": INT}, too_small=BOOL,
                               cut_off=BOOL)
SCHEMAS["Track"] = obj(
    ("id", "verdict", "score", "start_s", "end_s", "frames_seen", "too_short", "decisive",
     "timeline"),
    id=INT, verdict=VERDICT, score=null(NUMBER), label=null(STR), confidence=null(NUMBER),
    start_s=NUMBER, end_s=NUMBER, frames_seen=INT, frames_judged=INT, too_short=BOOL,
    consistent=null(BOOL), disagreement=null(NUMBER), note=null(STR),
    decisive=obj(("t", "frame_index"), t=NUMBER, frame_index=INT, score=null(NUMBER)),
    timeline={"type": "array", "items": ref("TimelinePoint")})
SCHEMAS["Video"] = obj(
    ("source", "fps_sampled", "frames_sampled", "tracks", "frame_thumbnails"),
    source={"type": "string", "enum": ["file", "frames"]},
    capture=null({"type": "string", "enum": ["canvas", "tab"]}), format=null(STR),
    codec=null(STR), duration_s=null(NUMBER), fps_sampled=NUMBER, frames_sampled=INT,
    width=null(INT), height=null(INT), tracks={"type": "array", "items": ref("Track")},
    frame_thumbnails=BOOL, rule=STR)
SCHEMAS["Check"]["properties"].update(
    media={"type": "string", "enum": ["image", "video"]}, video=ref("Video"))
SCHEMAS["Item"]["properties"].update(
    media={"type": "string", "enum": ["image", "video"]}, video=null(ref("Video")),
    check_id=null(STR), frame_url=null(STR), track_heatmap_url=null(STR))
SCHEMAS["HashListImport"] = obj(("source", "added", "updated"), source=STR, added=INT, updated=INT)
SCHEMAS["FaqChanges"] = {**obj((), **SCHEMAS["NewFaqEntry"]["properties"]),
                         "anyOf": [{"required": [k]} for k in
                                   ("question", "answer", "position", "published")]}


def query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def paging(maximum: int, default: int) -> tuple[dict, dict]:
    return (query("limit", {"type": "integer", "minimum": 1, "maximum": maximum,
                            "default": default}, "page size"),
            query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT, "default": 0},
                  "entries to skip"))


#: query parameters by route (method and path)
QUERY: dict[tuple[str, str], tuple[dict, ...]] = {
    ("GET", "/v1/checks"): (
        query("sha256", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
              "answer the stored result of this image (hex SHA-256 of its bytes)"),
        query("page_url", OPTIONAL_URL, "with sha256: the page the image was seen on"),
        *paging(200, 50),
        query("before", {"type": "number"}, "only checks created before this time"),
    ),
    ("GET", "/v1/checks/{check_id}/heatmap.png"): (
        query("track", {"type": "integer", "minimum": 0, "maximum": MAX_TRACK},
              "a video check: this track's decisive frame (default: the most fake track's)"),
    ),
    ("GET", "/v1/moderation/items"): (
        query("state", {"type": "string", "enum": ["open", "confirmed_fake", "real", "dismissed",
                                                   "all"], "default": "open"}),
        query("sort", {"type": "string", "enum": ["score", "recent", "reports"],
                       "default": "score"}),
        *paging(100, 25),
    ),
    ("GET", "/v1/admin/users"): (
        query("q", STR, "email or id contains"),
        query("role", {"type": "string", "enum": ["", "user", "moderator", "admin"]}),
        *paging(200, 50),
    ),
    ("GET", "/v1/admin/audit"): (
        query("action", STR, "an action, or a prefix ending in '.'"),
        query("actor", STR), query("target", STR),
        paging(500, 100)[0],
        query("before", {"type": "integer", "minimum": 0, "maximum": MAX_INT},
              "the id of the last entry of the previous page"),
    ),
    ("GET", "/v1/admin/audit.csv"): (
        query("action", STR), query("actor", STR), query("target", STR)),
    ("POST", "/v1/admin/hashlist"): (
        query("source", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9 ._@:/-]{0,99}$"},
              "the list's source: another team's name (not 'local'); required"),),
    ("GET", "/v1/admin/outbox"): (
        query("state", {"type": "string", "enum": ["", "pending", "sending", "sent", "failed"]}),
        *paging(200, 50),
    ),
}

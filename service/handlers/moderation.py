"""The flagged queue for moderators, and the "wrong verdict" report users send from the extension."""

from __future__ import annotations

from aiohttp import web

from service import audit
from service.auth.identity import caller
from service.errors import bad_request, not_found
from service.handlers.common import heatmap_response, optional_url, page_args, read_json
from service.keys import CHECKS, DB, MAIL, SETTINGS
from service.mail import alerts
from service.moderation import queue
from service.text import visible_or_none

MAX_NOTE = 2000


def _note(body: dict) -> str | None:
    note = body.get("note")
    if note is None or note == "":
        return None
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise bad_request("bad_field", f"note must be text up to {MAX_NOTE} characters")
    return visible_or_none(note)


async def report_check(request: web.Request) -> web.Response:
    """The check's owner says its verdict is wrong: the image goes to the moderators' queue."""
    user = caller(request)
    check = await request.app[CHECKS].get(request.match_info["check_id"])
    if check is None or check["user_id"] != user.id:
        raise not_found("no such check")
    body = await read_json(request, ("note", "page_url")) if request.can_read_body else {}
    note, page_url = _note(body), optional_url(body.get("page_url"))
    db = request.app[DB]
    async with db.transaction() as tx:
        result = await queue.report(tx, check, user.id, note, page_url)
        await audit.record(tx, user, "moderation.report", result["flag_id"],
                           {"check_id": check["id"], "note": note}, request.remote)
    request.app[MAIL].poke()
    return web.json_response({"flag_id": result["flag_id"], "status": result["status"]}, status=201)


async def list_items(request: web.Request) -> web.Response:
    """?state=open|confirmed_fake|real|dismissed|all &sort=score|recent|reports &limit &offset"""
    state = request.query.get("state", "open")
    sort = request.query.get("sort", "score")
    if state not in (*queue.STATES, "all"):
        raise bad_request("bad_query", f"state must be one of {', '.join(queue.STATES)} or all")
    if sort not in queue.SORTS:
        raise bad_request("bad_query", f"sort must be one of {', '.join(queue.SORTS)}")
    limit, offset = page_args(request, default=25, maximum=100)
    items, total = await queue.list_items(request.app[DB], state, sort, limit, offset)
    return web.json_response({"items": items, "total": total, "limit": limit, "offset": offset,
                              "counts": await queue.counts(request.app[DB])})


def _item_id(request: web.Request) -> str:
    return request.match_info["item_id"]


async def get_item(request: web.Request) -> web.Response:
    item = await queue.get_item(request.app[DB], _item_id(request))
    if item is None:
        raise not_found("no such item")
    return web.json_response(item)


async def item_image(request: web.Request) -> web.Response:
    row = await queue.image_inputs(request.app[DB], _item_id(request))
    if row is None or not row["thumbnail"]:
        raise not_found("no image is stored for this item")
    return web.Response(body=row["thumbnail"], content_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})


async def item_heatmap(request: web.Request) -> web.Response:
    row = await queue.image_inputs(request.app[DB], _item_id(request))
    if row is None or not row["thumbnail"] or not row["cams"]:
        raise not_found("no heatmap is stored for this item")
    return await heatmap_response(request, row)


async def decide(request: web.Request) -> web.Response:
    """{"decision": "fake"|"real"|"dismissed", "note", "version"}: 409 if the version is stale."""
    moderator = caller(request)
    item_id = request.match_info["item_id"]
    body = await read_json(request, ("decision", "note", "version"))
    decision = body.get("decision")
    if not isinstance(decision, str) or decision not in queue.DECISIONS:
        raise bad_request("bad_decision", "decision must be fake, real or dismissed")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad_request("missing_version",
                          "send the item's version you decided on (from GET .../items/{id})")
    note = _note(body)
    db = request.app[DB]
    base_url = request.app[SETTINGS].public_url.rstrip("/")
    async with db.transaction() as tx:
        new_version = await queue.decide(tx, item_id, decision, note, version, moderator)
        told = await alerts.decision_mails(tx, item_id, decision, note, new_version, base_url)
        await audit.record(tx, moderator, "moderation.decision", item_id,
                           {"decision": decision, "note": note, "version": new_version,
                            "reporters_notified": told}, request.remote)
    request.app[MAIL].poke()
    return web.json_response(await queue.get_item(db, item_id))

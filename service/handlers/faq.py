"""The FAQ: public list for the help page, and the admins' create/update/delete."""

from __future__ import annotations

from aiohttp import web

from service import audit, faq
from service.auth.identity import caller
from service.errors import not_found
from service.handlers.common import path_int, read_json
from service.keys import DB

FAQ_FIELDS = ("question", "answer", "position", "published")


async def public_faq(request: web.Request) -> web.Response:
    return web.json_response({"items": await faq.entries(request.app[DB], published_only=True)})


async def admin_faq(request: web.Request) -> web.Response:
    return web.json_response({"items": await faq.entries(request.app[DB], published_only=False)})


async def create_faq(request: web.Request) -> web.Response:
    """{"question", "answer", "position"?, "published"?}"""
    admin = caller(request)
    fields = faq.validate(await read_json(request, FAQ_FIELDS), partial=False)
    db = request.app[DB]
    async with db.transaction() as tx:
        entry = await faq.create(tx, fields)
        await audit.record(tx, admin, "faq.create", str(entry["id"]),
                           {"question": entry["question"]}, request.remote)
    return web.json_response(entry, status=201)


def _faq_id(request: web.Request) -> int:
    faq_id = path_int(request, "faq_id")
    if faq_id is None:
        raise not_found("no such FAQ entry")
    return faq_id


async def update_faq(request: web.Request) -> web.Response:
    admin = caller(request)
    faq_id = _faq_id(request)
    fields = faq.validate(await read_json(request, FAQ_FIELDS), partial=True)
    db = request.app[DB]
    async with db.transaction() as tx:
        entry = await faq.update(tx, faq_id, fields)
        await audit.record(tx, admin, "faq.update", str(faq_id), {"fields": sorted(fields)},
                           request.remote)
    return web.json_response(entry)


async def delete_faq(request: web.Request) -> web.Response:
    admin = caller(request)
    faq_id = _faq_id(request)
    db = request.app[DB]
    async with db.transaction() as tx:
        entry = await faq.delete(tx, faq_id)
        await audit.record(tx, admin, "faq.delete", str(faq_id), {"question": entry["question"]},
                           request.remote)
    return web.json_response({"deleted": faq_id})

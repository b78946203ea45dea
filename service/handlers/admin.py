"""Admin: the user list (role, disable, delete with data), the audit trail, the mail outbox."""

from __future__ import annotations

import re

from aiohttp import web

from service import accounts, audit
from service.auth.identity import caller
from service.errors import ApiError, bad_request
from service.handlers.common import page_args, query_int, read_json, refuse_nul
from service.keys import DB, MAIL
from service.mail import outbox
from service.moderation import hashlist
from service.roles import ROLES


async def list_users(request: web.Request) -> web.Response:
    """?q= (email or id contains) &role= &limit &offset"""
    role = request.query.get("role") or None
    if role is not None and role not in ROLES:
        raise bad_request("bad_query", f"role must be one of {', '.join(ROLES)}")
    limit, offset = page_args(request)
    items, total = await accounts.listing(request.app[DB], request.query.get("q"), role, limit, offset)
    return web.json_response({"items": items, "total": total, "limit": limit, "offset": offset})


async def update_user(request: web.Request) -> web.Response:
    """{"role": "user"|"moderator"|"admin", "disabled": bool}; takes effect on the next request."""
    admin = caller(request)
    user_id = request.match_info["user_id"]
    body = await read_json(request, ("role", "disabled"))
    role, disabled = body.get("role"), body.get("disabled")
    if not body:
        raise bad_request("nothing_to_change", "send role and/or disabled")
    if "role" in body and (not isinstance(role, str) or role not in ROLES):
        raise bad_request("bad_role", f"role must be one of {', '.join(ROLES)}")
    if "disabled" in body and not isinstance(disabled, bool):
        raise bad_request("bad_field", "disabled must be true or false")
    if user_id == admin.id and (disabled or (role is not None and role != admin.role)):
        raise ApiError(409, "own_account", "you cannot change your own role or disable yourself")
    db = request.app[DB]
    async with db.transaction() as tx:
        user, changes = await accounts.update(tx, user_id, role=role, disabled=disabled)
        if "role" in changes:
            await audit.record(tx, admin, "admin.role_change", user_id, changes["role"], request.remote)
        if "disabled" in changes:
            action = "admin.disable" if changes["disabled"]["to"] else "admin.enable"
            await audit.record(tx, admin, action, user_id, None, request.remote)
    return web.json_response(user)


async def delete_user(request: web.Request) -> web.Response:
    """Delete an account with its data (checks, reports, unsent mail); the audit trail stays."""
    admin = caller(request)
    user_id = request.match_info["user_id"]
    if user_id == admin.id:
        raise ApiError(409, "own_account", "you cannot delete your own account here")
    db = request.app[DB]
    async with db.transaction() as tx:
        row = await accounts.get(tx, user_id)
        removed = await accounts.delete(tx, user_id)
        await audit.record(tx, admin, "admin.delete_user", user_id,
                           {"email": row["email"], "role": row["role"], "removed": removed},
                           request.remote)
    return web.json_response({"deleted": user_id, "removed": removed})


def _audit_filters(request: web.Request) -> dict:
    return {k: request.query.get(k) or None for k in ("action", "actor", "target")}


async def list_audit(request: web.Request) -> web.Response:
    """Newest first. ?action= (exact, or a prefix ending in '.') &actor= &target= &limit &before=<id>"""
    limit, _ = page_args(request, default=100, maximum=500)
    before = query_int(request, "before")
    items = await audit.entries(request.app[DB], limit=limit, before=before, **_audit_filters(request))
    return web.json_response({"items": items,
                              "next_before": items[-1]["id"] if len(items) == limit else None})


async def export_audit(request: web.Request) -> web.Response:
    """The whole trail (same filters) as CSV, oldest first."""
    text = await audit.export_csv(request.app[DB], **_audit_filters(request))
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": 'attachment; filename="realcheck-audit.csv"',
        "Cache-Control": "no-store"})


async def list_outbox(request: web.Request) -> web.Response:
    """Queued and sent email, newest first: ?state=pending|sending|sent|failed &limit &offset"""
    state = request.query.get("state") or None
    if state not in (None, "pending", "sending", "sent", "failed"):
        raise bad_request("bad_query", "state must be pending, sending, sent or failed")
    limit, offset = page_args(request)
    db = request.app[DB]
    items, total = await outbox.messages(db, state, limit, offset)
    return web.json_response({"items": items, "total": total, "counts": await outbox.counts(db),
                              "smtp_enabled": request.app[MAIL].enabled})


async def retry_outbox(request: web.Request) -> web.Response:
    """Send failed messages again: {"id": <message id>} for one, {} for all."""
    admin = caller(request)
    body = await read_json(request, ("id",)) if request.can_read_body else {}
    message_id = body.get("id")
    if message_id is not None and (not isinstance(message_id, int) or isinstance(message_id, bool)
                                   or message_id < 1):
        raise bad_request("bad_field", "id must be a message id")
    db = request.app[DB]
    async with db.transaction() as tx:
        n = await outbox.retry_failed(tx, message_id)
        await audit.record(tx, admin, "mail.retry", str(message_id) if message_id else None,
                           {"requeued": n}, request.remote)
    request.app[MAIL].poke()
    return web.json_response({"requeued": n})


SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:/-]{0,99}$")


async def export_hash_list(request: web.Request) -> web.Response:
    """Decided items (and imported entries) as a CSV hash list: pdq, verdict, note, date, source,
    window hashes, face descriptors."""
    admin = caller(request)
    db = request.app[DB]
    text = await hashlist.export_csv(db)
    async with db.transaction() as tx:
        await audit.record(tx, admin, "admin.hashlist_export", None,
                           {"rows": text.count("\n") - 1}, request.remote)
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": 'attachment; filename="realcheck-hashlist.csv"',
        "Cache-Control": "no-store"})


async def import_hash_list(request: web.Request) -> web.Response:
    """A CSV hash list in the body (``text/csv``), from ``?source=`` (another team's name)."""
    admin = caller(request)
    source = (request.query.get("source") or "").strip()
    if not SOURCE_RE.match(source) or source == "local":
        raise bad_request("bad_source", "name the list's source: ?source=<team or list name>"
                                        " (letters, digits, . _ - @ : /; not 'local')")
    if request.content_type not in ("text/csv", "text/plain"):
        raise ApiError(415, "unsupported_media_type", "send the CSV as text/csv")
    try:
        text = (await request.read()).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise bad_request("bad_csv", "the CSV must be UTF-8 text") from e
    refuse_nul(text, "the CSV")
    entries = hashlist.parse_csv(text)
    db = request.app[DB]
    async with db.transaction() as tx:
        result = await hashlist.import_entries(tx, entries, source, admin.id)
        await audit.record(tx, admin, "admin.hashlist_import", source, result, request.remote)
    return web.json_response(result, status=201)

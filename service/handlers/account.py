"""Sign-in without an outside provider (register, confirm, log in) and the caller's own settings."""

from __future__ import annotations

import logging

from aiohttp import web

from service import accounts, audit
from service.auth import passwords, registration
from service.auth.identity import caller
from service.errors import ApiError, bad_request
from service.handlers.common import read_json
from service.keys import AUTH_LIMITER, DB, ISSUER, LOGIN_THROTTLE, MAIL, POOLS, SETTINGS

log = logging.getLogger(__name__)


def _issuer(request: web.Request):
    issuer = request.app[ISSUER]
    if issuer is None:
        raise ApiError(404, "external_sign_in",
                       "this service accepts tokens from an external provider (REALCHECK_JWKS_URL):"
                       " register and sign in there")
    return issuer


async def _throttle(request: web.Request) -> None:
    """Sign-in, register and confirm attempts per client address, counted before any hashing."""
    wait = await request.app[AUTH_LIMITER].take(request.remote or "unknown")
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many sign-in attempts from your address; slow down",
                       retry_after_s=round(wait, 2))


async def _credentials(request: web.Request) -> tuple[str, str]:
    body = await read_json(request, ("email", "password"))
    email = passwords.normalize_email(body.get("email"))
    if email is None:
        raise bad_request("bad_email", "send a valid email address")
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise bad_request("missing_password", "send a password")
    if len(password) > passwords.MAX_LENGTH:  # never hash megabytes
        raise bad_request("weak_password",
                          f"the password may have at most {passwords.MAX_LENGTH} characters")
    return email, password


def _session(request: web.Request, row) -> dict:
    issuer = _issuer(request)
    token = issuer.issue(row["id"], row["role"], email=row["email"])
    return {"token": token, "token_type": "Bearer", "expires_in": issuer.ttl_s,
            "user": accounts.public(row)}


#: the answer to every registration request, whether or not the address has an account
REGISTER_ANSWER = {
    "status": "confirmation_sent",
    "message": "Check your email: we sent a message to this address. To finish creating your"
               " account, open its link and enter your password (valid for"
               f" {registration.CODE_TTL_S // 3600} hours). If the address already has an"
               " account, the message says so.",
}


async def register(request: web.Request) -> web.Response:
    """Ask for an account (role user) with email and password: 202 and a mail, the same answer
    whether or not the address has an account (``service.auth.registration``)."""
    _issuer(request)
    await _throttle(request)
    email, password = await _credentials(request)
    problem = passwords.password_problem(password)
    if problem:
        raise bad_request("weak_password", problem)
    # Hashed whether or not the address has an account: both answers take as long.
    password_hash = await passwords.hash_password(password, request.app[POOLS].passwords)
    s = request.app[SETTINGS]
    async with request.app[DB].transaction() as tx:
        code = await registration.request(tx, email, password_hash, s.public_url.rstrip("/"))
        await audit.record(tx, None, "auth.register_requested", None,
                           {"email": email, "new": code is not None}, request.remote)
    request.app[MAIL].poke()
    if code is not None and not s.smtp_host:
        log.warning("mail is off (REALCHECK_SMTP_HOST is empty): the registration of %s is"
                    " confirmed at %s", email, registration.link(s.public_url.rstrip("/"), code))
    return web.json_response(REGISTER_ANSWER, status=202)


async def confirm(request: web.Request) -> web.Response:
    """The code from the registration mail and the password chosen then -> the new account's
    session (201)."""
    _issuer(request)
    await _throttle(request)
    body = await read_json(request, ("code", "password"))
    code, password = body.get("code"), body.get("password")
    if not isinstance(code, str) or not 0 < len(code) <= registration.CODE_MAX_LENGTH:
        raise bad_request("bad_code", "send the code from the registration mail")
    if not isinstance(password, str) or not password:
        raise bad_request("missing_password", "send the password you registered with")
    if len(password) > passwords.MAX_LENGTH:
        raise bad_request("weak_password",
                          f"the password may have at most {passwords.MAX_LENGTH} characters")
    db = request.app[DB]
    pending = await registration.pending(db, code)
    ok = await passwords.verify_password(password, pending["password_hash"] if pending else None,
                                         request.app[POOLS].passwords)
    user_id = None
    if ok:
        async with db.transaction() as tx:
            user_id = await registration.confirm(tx, pending)
            if user_id is not None:
                await audit.record(tx, user_id, "auth.register", user_id,
                                   {"email": pending["email"]}, request.remote)
    if user_id is None:
        raise ApiError(401, "bad_confirmation",
                       "this code is wrong, used or expired, or the password is not the one you"
                       " registered with")
    return web.json_response(_session(request, await accounts.get(db, user_id)), status=201)


async def login(request: web.Request) -> web.Response:
    """Email and password -> session token.

    Repeated failures lock the (client address, email) pair for a while, whether or not the
    email has an account: the answers never tell which emails exist, and a stranger cannot
    lock the owner out from elsewhere.
    """
    _issuer(request)
    await _throttle(request)
    s = request.app[SETTINGS]
    lock = request.app[LOGIN_THROTTLE]
    email, password = await _credentials(request)
    address = request.remote or "unknown"
    db = request.app[DB]
    row = await accounts.by_email(db, email)
    if (wait := await lock.locked_for(address, email)) > 0:
        async with db.transaction() as tx:
            await audit.record(tx, row["id"] if row else None, "auth.login_locked",
                               row["id"] if row else None, {"email": email}, request.remote)
        raise ApiError(429, "account_locked",
                       f"too many failed sign-ins: try again in {int(wait) + 1} s",
                       retry_after_s=int(wait) + 1)
    pool = request.app[POOLS].passwords
    ok = await passwords.verify_password(password, row["password_hash"] if row else None, pool)
    if not ok:
        locked = await lock.failed(address, email)
        async with db.transaction() as tx:
            await audit.record(tx, row["id"] if row else None, "auth.login_failed",
                               row["id"] if row else None, {"email": email}, request.remote)
            if locked:
                await audit.record(tx, row["id"] if row else None, "auth.locked",
                                   row["id"] if row else None,
                                   {"email": email, "for_s": s.login_lockout_s}, request.remote)
        raise ApiError(401, "bad_credentials", "wrong email or password")
    await lock.succeeded(address, email)
    if row["disabled"]:
        async with db.transaction() as tx:
            await audit.record(tx, row["id"], "auth.login_refused", row["id"],
                               {"reason": "disabled"}, request.remote)
        raise ApiError(403, "account_disabled", "this account has been disabled by an admin")
    new_hash = await passwords.hash_password(password, pool) \
        if passwords.needs_rehash(row["password_hash"]) else None
    async with db.transaction() as tx:
        await accounts.record_success(tx, row["id"])
        if new_hash:
            await accounts.set_password_hash(tx, row["id"], new_hash)
        await audit.record(tx, row["id"], "auth.login", row["id"], None, request.remote)
    return web.json_response(_session(request, await accounts.get(db, row["id"])))


async def me(request: web.Request) -> web.Response:
    user = caller(request)
    return web.json_response(accounts.public(await accounts.get(request.app[DB], user.id)))


async def update_me(request: web.Request) -> web.Response:
    """Change your email address and which alerts you get."""
    user = caller(request)
    body = await read_json(request, ("email", "email_alerts", "queue_alerts"))
    db = request.app[DB]
    row = await accounts.get(db, user.id)
    changes: dict = {}
    for flag in ("email_alerts", "queue_alerts"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise bad_request("bad_field", f"{flag} must be true or false")
            changes[flag] = int(body[flag])
    if "email" in body:
        email = passwords.normalize_email(body["email"]) if body["email"] is not None else None
        if body["email"] is not None and email is None:
            raise bad_request("bad_email", "send a valid email address (or null)")
        if email is None and row["password_hash"]:
            raise bad_request("email_required", "you sign in with your email: it cannot be removed")
        if email != row["email"]:
            changes["email"] = email
    if not changes and not any(k in body for k in ("email", "email_alerts", "queue_alerts")):
        raise bad_request("nothing_to_change", "send email, email_alerts or queue_alerts")
    if changes:
        async with db.transaction() as tx:
            await accounts.update_own(tx, user.id, changes)
            detail = {k: v for k, v in changes.items() if k != "email"}
            if "email" in changes:
                detail["email"] = {"from": row["email"], "to": changes["email"]}
            await audit.record(tx, user, "account.update", user.id, detail, request.remote)
    return web.json_response(accounts.public(await accounts.get(db, user.id)))

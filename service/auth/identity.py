"""Who is calling: the bearer token, resolved to a row of the users table.

The users table is the authority on roles: a user seen for the first time is created with the
role their token claims (``user`` when it claims none), and from then on the table's role is
used, so an admin's change takes effect on the next request, whatever old tokens say.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from service import accounts, audit
from service.auth.tokens import TokenError
from service.errors import ApiError
from service.keys import DB, VERIFIER
from service.roles import ROLES

_USER = web.RequestKey("user", "User")


@dataclass(frozen=True)
class User:
    id: str
    role: str
    email: str | None

    def has(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


async def authenticate(request: web.Request) -> User:
    """The calling user, or ApiError 401/403. Cached on the request."""
    try:
        return request[_USER]
    except KeyError:
        pass
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "missing_token", "sign in: send 'Authorization: Bearer <token>'")
    try:
        claims = await request.app[VERIFIER].verify(token)
    except TokenError as e:
        # The issuer's keys being out of reach is our outage, not a bad token.
        raise ApiError(503 if e.code == "jwks_unavailable" else 401, e.code, e.message) from e
    db = request.app[DB]
    row = await accounts.identity(db, claims.sub)
    if row is None:
        role = claims.role or "user"
        async with db.transaction() as tx:
            if await accounts.first_sight(tx, claims.sub, claims.email, role):
                await audit.record(tx, claims.sub, "auth.first_seen", claims.sub,
                                   {"issuer": claims.issuer, "role": role})
        row = await accounts.identity(db, claims.sub)
    if row["disabled"]:
        raise ApiError(403, "account_disabled", "this account has been disabled by an admin")
    user = User(id=claims.sub, role=row["role"], email=row["email"] or claims.email)
    request[_USER] = user
    return user


async def require_role(request: web.Request, role: str) -> User:
    """The calling user if their role is at least ``role``; else 403 with the reason."""
    user = await authenticate(request)
    if not user.has(role):
        raise ApiError(403, "forbidden", f"this needs the {role} role; you are {user.role}")
    return user


def caller(request: web.Request) -> User:
    """The calling user, already authenticated and role-checked by the route table's guard
    (``service.routes.guarded``): only for handlers of routes with a role other than public."""
    return request[_USER]

"""Every route in service.routes.ROUTES, table-driven: who may call it.

Public routes answer without a token; the others answer 401 without one, 403 (with a JSON
reason) to every role below theirs, and something other than 401/403 to their own role. A new
route is covered by adding it to ROUTES.
"""

import asyncio
import re

from service.auth.tokens import ROLES
from service.keys import JOBS
from service.routes import ROUTES

IDS = [f"{r.method} {r.path}" for r in ROUTES]


def concrete(path: str) -> str:
    """Path parameters filled with ids that exist nowhere (and a file name for /static)."""
    return re.sub(r"\{(\w+)\}", lambda m: "site.css" if m.group(1) == "name" else "nonexistent-1",
                  path)


async def call(client, route, headers=None):
    kwargs = {"headers": headers or {}}
    if route.method in ("POST", "PATCH", "PUT"):
        kwargs["json"] = {}
    return await client.request(route.method, concrete(route.path), **kwargs)


def test_every_route_names_a_known_role():
    for r in ROUTES:
        assert r.role in ("public", *ROLES), f"{r.method} {r.path}: unknown role {r.role!r}"
    assert len(set(IDS)) == len(IDS), "a route is listed twice"


async def test_without_a_token(client):
    failures = []
    for route, name in zip(ROUTES, IDS):
        resp = await call(client, route)
        body = (await resp.read()).decode("utf-8", "replace")
        if route.role == "public":
            if resp.status in (401, 403):
                failures.append(f"{name} is public but answered {resp.status}: {body}")
        elif resp.status != 401 or (await resp.json())["error"] != "missing_token":
            failures.append(f"{name} needs {route.role} but answered {resp.status}: {body}")
    assert not failures, "\n".join(failures)


async def test_roles_below_are_refused_and_the_role_itself_is_let_through(client, auth):
    failures = []
    for route, name in zip(ROUTES, IDS):
        if route.role == "public":
            continue
        for role in ROLES[:ROLES.index(route.role)]:
            resp = await call(client, route, auth(f"who-{role}", role))
            body = await resp.json() if resp.content_type == "application/json" else {}
            if resp.status != 403 or body.get("error") != "forbidden" \
                    or route.role not in body.get("message", ""):
                failures.append(f"{name} as {role}: {resp.status} {body}")
        resp = await call(client, route, auth(f"who-{route.role}", route.role))
        if resp.status in (401, 403):
            failures.append(f"{name} as {route.role}: {resp.status} {await resp.text()}")
    assert not failures, "\n".join(failures)


async def test_a_disabled_account_is_refused_everywhere(client, auth):
    admin, victim = auth("root", "admin"), auth("victim", "admin")
    assert (await client.get("/v1/me", headers=victim)).status == 200  # seen once: created
    assert (await client.get("/v1/me", headers=admin)).status == 200
    resp = await client.patch("/v1/admin/users/victim", json={"disabled": True}, headers=admin)
    assert resp.status == 200, await resp.text()
    failures = []
    for route, name in zip(ROUTES, IDS):
        if route.role == "public":
            continue
        resp = await call(client, route, victim)
        if resp.status != 403 or (await resp.json())["error"] != "account_disabled":
            failures.append(f"{name}: {resp.status} {await resp.text()}")
    assert not failures, "\n".join(failures)


async def test_a_role_change_takes_effect_on_the_next_request_whatever_the_token_says(client, auth):
    admin, carol = auth("root", "admin"), auth("carol", "user")
    await client.get("/v1/me", headers=admin)
    assert (await client.get("/v1/moderation/items", headers=carol)).status == 403
    resp = await client.patch("/v1/admin/users/carol", json={"role": "moderator"}, headers=admin)
    assert resp.status == 200
    assert (await client.get("/v1/moderation/items", headers=carol)).status == 200
    await client.patch("/v1/admin/users/carol", json={"role": "user"}, headers=admin)
    assert (await client.get("/v1/moderation/items", headers=carol)).status == 403
    # A token that claims admin does not make an existing user one.
    assert (await client.get("/v1/admin/users", headers=auth("carol", "admin"))).status == 403


async def test_openapi_lists_every_route_with_its_role(client):
    doc = await (await client.get("/openapi.json")).json()
    for r in ROUTES:
        op = doc["paths"][r.path][r.method.lower()]
        assert op["x-required-role"] == r.role
        assert ("security" in op) == (r.role != "public")


async def test_only_the_owner_cancels_a_job_moderators_may_follow_it(client, auth):
    """A moderator's DELETE of another user's running job cancelled it (unaudited, its work
    lost): moderators read every check, but only owners act on theirs."""
    release = asyncio.Event()

    async def work(progress):
        await release.wait()
        return {}

    job = await client.app[JOBS].submit("alice", "video", "0" * 64, work)
    url = f"/v1/jobs/{job['id']}"
    try:
        for who in (auth("mo", "moderator"), auth("root", "admin"), auth("bob")):
            resp = await client.delete(url, headers=who)
            assert resp.status == 404 and (await resp.json())["error"] == "not_found"
        resp = await client.get(url, headers=auth("mo", "moderator"))
        assert resp.status == 200 and (await resp.json())["job"]["status"] in ("queued", "running")
        assert (await client.get(url, headers=auth("bob"))).status == 404
        resp = await client.delete(url, headers=auth("alice"))
        assert resp.status == 200 and (await resp.json())["job"]["status"] == "cancelled"
    finally:
        release.set()

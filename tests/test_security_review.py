"""Findings of the security review (issue 9), one regression test or more each: sign-in floods,
odd input that used to answer 500, page URLs, token claims, lockouts that strangers could use."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import jwt
import pytest
from aiohttp import web

from service.app import create_app
from service.checks.fetch import PublicOnlyResolver
from service.keys import POOLS
from service.routes import Route, add_routes
from service.settings import Settings
from tests.support.accounts import PASSWORD, ask_to_register, login, register
from tests.support.api import post_check
from tests.support.paths import REPO


async def error_of(resp) -> tuple[int, str]:
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, (await resp.json())["error"]


# 1. A sign-in flood must not starve heatmaps, DNS or mail; each address is limited.

async def test_sign_in_attempts_are_limited_per_address(aiohttp_client, tmp_path):
    # One attempt a minute: the bucket refills 1/60 of an attempt a second, far less than the
    # next attempts need (each counted before any password is hashed).
    settings = Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0,
                        auth_attempts_per_minute=1)
    client = await aiohttp_client(create_app(settings))
    first = await error_of(await login(client, email="x0@example.com"))
    assert first == (401, "bad_credentials")
    for i in (1, 2):  # another unknown email each time: the address limit, not a lockout
        resp = await login(client, email=f"x{i}@example.com")
        assert await error_of(resp) == (429, "rate_limited")
    resp = await ask_to_register(client, email="new@example.com")
    assert await error_of(resp) == (429, "rate_limited") and int(resp.headers["Retry-After"]) >= 1


async def test_password_hashing_has_its_own_bounded_pool(client, auth, face_bytes):
    """Every thread that hashes passwords is busy and the loop's shared pool is blocked too
    (what the flood did): heatmaps and host lookups still answer, and one more sign-in is refused
    at once with 503 instead of queueing behind the flood."""
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    shared = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(shared)
    pools = client.app[POOLS]
    check = await post_check(client, auth(), face_bytes)
    blocked = [loop.run_in_executor(None, gate.wait)]
    blocked += [asyncio.ensure_future(pools.passwords.run(gate.wait))
                for _ in range(pools.passwords.limit)]
    try:
        resp = await asyncio.wait_for(client.get(check["heatmap_url"], headers=auth()), 60)
        assert resp.status == 200 and resp.content_type == "image/png"
        resolver = PublicOnlyResolver(allow_private=True, executor=pools.dns)
        infos = await asyncio.wait_for(resolver.resolve("localhost", 80), 60)
        assert infos and infos[0]["port"] == 80
        started = time.monotonic()
        resp = await login(client)
        assert await error_of(resp) == (503, "busy") and resp.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 30  # refused, not queued behind the flood
    finally:
        gate.set()
        await asyncio.gather(*blocked)
        shared.shutdown()


# 3. Odd input answers a 4xx JSON error with a stable code, never a 500.

NESTED = "[" * 1000
DEEP_FIELD = '{"email": ' + "[" * 5000 + "]" * 5000 + ', "password": "x"}'


async def test_deeply_nested_json_is_a_bad_request(client, auth):
    for path, method in (("/v1/auth/login", "POST"), ("/v1/auth/register", "POST"),
                         ("/v1/checks", "POST"), ("/v1/me", "PATCH")):
        for body in (NESTED, DEEP_FIELD):
            resp = await client.request(method, path, data=body, headers={
                **auth(), "Content-Type": "application/json"})
            assert await error_of(resp) == (400, "bad_json"), (path, body[:20])


async def test_huge_numbers_and_lone_surrogates_are_bad_requests(client, auth):
    await register(client)
    bodies = [
        '{"email": "ann@example.com", "password": ' + "9" * 5000 + "}",
        '{"email": "ann@example.com", "password": "\\ud800 long enough"}',
        '{"email": "\\ud800@example.com", "password": "long enough password"}',
    ]
    for path in ("/v1/auth/login", "/v1/auth/register"):
        for body in bodies:
            resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
            assert await error_of(resp) == (400, "bad_json"), (path, body[:40])
    resp = await client.patch("/v1/me", data='{"email": "\\udfff@example.com"}',
                              headers={**auth(), "Content-Type": "application/json"})
    assert await error_of(resp) == (400, "bad_json")


async def test_a_lone_surrogate_in_a_report_note(client, auth, noise_png):
    check = await post_check(client, auth(), noise_png)
    resp = await client.post(f"/v1/checks/{check['id']}/report", data='{"note": "a \\ud800 b"}',
                             headers={**auth(), "Content-Type": "application/json"})
    assert await error_of(resp) == (400, "bad_json")
    resp = await client.post(f"/v1/checks/{check['id']}/report", json={"note": "fine"},
                             headers=auth())
    assert resp.status == 201


async def test_integers_past_64_bits(client, auth):
    admin = auth("root", "admin")
    big = str(2**64)
    for path in (f"/v1/checks?offset={big}", f"/v1/admin/audit?before={big}",
                 f"/v1/admin/users?offset={big}", f"/v1/moderation/items?offset={big}",
                 f"/v1/admin/outbox?offset={big}", "/v1/checks?limit=" + "9" * 5000):
        resp = await client.get(path, headers=admin)
        assert await error_of(resp) == (400, "bad_query"), path
    resp = await client.post("/v1/admin/faq", json={"question": "Q?", "answer": "A.",
                                                    "position": 2**64}, headers=admin)
    assert await error_of(resp) == (400, "bad_json")
    resp = await client.post("/v1/admin/faq", json={"question": "Q?", "answer": "A."}, headers=admin)
    assert resp.status == 201
    for method in ("PATCH", "DELETE"):
        resp = await client.request(method, f"/v1/admin/faq/{big}", json={"answer": "B."},
                                    headers=admin)
        assert await error_of(resp) == (404, "not_found"), method
    resp = await client.post("/v1/admin/outbox/retry", json={"id": 2**64}, headers=admin)
    assert await error_of(resp) == (400, "bad_json")
    resp = await client.post("/v1/moderation/items/flg_x/decision", headers=auth("mo", "moderator"),
                             json={"decision": "fake", "version": 2**64})
    assert await error_of(resp) == (400, "bad_json")


# 6. Page URLs: only http and https.

BAD_PAGES = ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>x</b>",
             " javascript:alert(1)", "java\tscript:alert(1)", "vbscript:x", "file:///etc/passwd",
             "//example.com/page", "http:/example.com", "https://", "http://exa mple.com/"]


async def test_page_urls_other_than_http_and_https_are_refused(client, auth, noise_png):
    check = await post_check(client, auth(), noise_png, page_url="https://example.com/a?b=c#d")
    assert check["page_url"] == "https://example.com/a?b=c#d"
    for page in BAD_PAGES:
        form = aiohttp.FormData()
        form.add_field("image", noise_png, filename="n.png", content_type="image/png")
        form.add_field("page_url", page)
        resp = await client.post("/v1/checks", data=form, headers=auth())
        assert await error_of(resp) == (400, "bad_url_scheme"), page
        resp = await client.get("/v1/checks", params={"sha256": check["sha256"], "page_url": page},
                                headers=auth())
        assert await error_of(resp) == (400, "bad_url_scheme"), page
        resp = await client.post(f"/v1/checks/{check['id']}/report", json={"page_url": page},
                                 headers=auth())
        assert await error_of(resp) == (400, "bad_url_scheme"), page
    resp = await client.post(f"/v1/checks/{check['id']}/report",
                             json={"page_url": "http://example.com/p"}, headers=auth())
    assert resp.status == 201


# 7 (and 3). Token claims a valid signature does not vouch for.

def signed(issuer, **claims) -> dict:
    now = int(time.time())
    body = {"iss": issuer.issuer, "sub": "alice", "iat": now, "nbf": now, "exp": now + 600,
            **claims}
    body = {k: v for k, v in body.items() if v is not None}
    token = jwt.encode(body, issuer.private_key, algorithm="RS256", headers={"kid": issuer.kid})
    return {"Authorization": "Bearer " + token}


@pytest.mark.parametrize("claims", [
    {"sub": ""}, {"sub": "   "}, {"sub": 42}, {"sub": ["alice"]}, {"sub": "x" * 1000},
    {"exp": str(int(time.time()) + 600)}, {"nbf": "0"}, {"iat": "now"}, {"exp": True},
    {"azp": 42}, {"azp": ["http://127.0.0.1:8080"]}, {"azp": {"a": 1}}, {"iss": None, "x": 1},
])
async def test_odd_token_claims_are_refused(client, issuer, claims):
    resp = await client.get("/v1/me", headers=signed(issuer, **claims))
    status, code = await error_of(resp)
    assert status == 401 and code in ("invalid_token", "wrong_issuer", "token_expired"), claims


async def test_a_lone_surrogate_in_a_token_claim(client, issuer):
    now = int(time.time())
    payload = json.dumps({"iss": issuer.issuer, "sub": "a\ud800", "iat": now, "exp": now + 600})
    token = jwt.api_jws.encode(payload.encode("utf-8", "surrogatepass"), issuer.private_key,
                               algorithm="RS256", headers={"kid": issuer.kid})
    resp = await client.get("/v1/me", headers={"Authorization": "Bearer " + token})
    assert await error_of(resp) == (401, "invalid_token")
    email = signed(issuer, sub="bob", email=["not", "an", "email"])
    resp = await client.get("/v1/me", headers=email)
    assert resp.status == 200 and (await resp.json())["email"] is None


# 9. Lockout: per client address and email, the same for emails without an account.

@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, login_max_failures=3,
                    login_lockout_s=600)


async def test_unknown_emails_lock_like_real_ones(client):
    await register(client)
    for email in ("ann@example.com", "nobody@example.com"):
        answers = [await error_of(await login(client, email, "wrong password!")) for _ in range(4)]
        assert answers == [(401, "bad_credentials")] * 3 + [(429, "account_locked")], email


async def test_a_stranger_cannot_lock_the_owner_out(client):
    await register(client)
    # The stranger connects from another address (127.0.0.2) and locks their own attempts.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as stranger:
        url = client.make_url("/v1/auth/login")
        for _ in range(3):
            resp = await stranger.post(url, json={"email": "ann@example.com", "password": "guess!!!!!"})
            assert resp.status == 401
        resp = await stranger.post(url, json={"email": "ann@example.com", "password": PASSWORD})
        assert await error_of(resp) == (429, "account_locked")  # even the right password
    resp = await login(client)  # the owner, from their own address
    assert resp.status == 200


# 4. A fake Content-Length on a small-body route: 413 at once, connection closed; a client that
# goes away mid-body is not logged as an error.

@pytest.fixture
async def server(app):
    """The app served the way ``web.run_app`` serves it (handlers are not cancelled when the
    client goes away, unlike aiohttp's test server): its (host, port)."""
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][:2]
    await runner.cleanup()


async def raw(server, head: str, body: bytes = b""):
    reader, writer = await asyncio.open_connection(*server)
    writer.write(head.encode() + b"\r\n\r\n" + body)
    await writer.drain()
    return reader, writer


async def test_a_huge_declared_body_on_a_small_route_is_refused_at_once(server, auth):
    token = auth()["Authorization"]
    for method, path in (("POST", "/v1/auth/login"), ("POST", "/v1/auth/register"),
                         ("PATCH", "/v1/me"), ("POST", "/v1/checks/chk_x/report")):
        reader, writer = await raw(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                                   f"Authorization: {token}\r\nContent-Type: application/json\r\n"
                                   "Content-Length: 1000000000")
        try:  # answered without waiting for the body (it used to wait for ever)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            body = await asyncio.wait_for(reader.readexactly(length), 30)
        finally:
            writer.close()
        assert head.startswith(b"HTTP/1.1 413 "), (path, head)
        assert b"connection: close" in head.lower(), head  # and no more requests on it
        assert json.loads(body)["error"] == "payload_too_large", path


@pytest.fixture
async def lingering_server(app):
    """Like ``server``, with aiohttp's lingering close (read and drop an unread body before
    closing; 10 s by default) stretched to 10 minutes: a socket closed within the tests' bound
    was closed by the service, not by that timer."""
    runner = web.AppRunner(app, handler_cancellation=False, lingering_time=600)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][:2]
    await runner.cleanup()


async def test_the_connection_is_closed_right_after_the_413(lingering_server):
    for path in ("/v1/auth/login", "/v1/auth/register"):
        reader, writer = await raw(lingering_server, f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Type: application/json\r\nContent-Length: 1000000000",
                                   b'{"email": ')
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.startswith(b"HTTP/1.1 413 "), head
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            assert json.loads(await reader.readexactly(length))["error"] == "payload_too_large"
            # The service closes the socket (end of stream), without waiting for the body.
            assert await asyncio.wait_for(reader.read(), 30) == b"", path
        finally:
            writer.close()


async def test_a_client_that_goes_away_mid_body_is_not_an_error(server, caplog):
    caplog.set_level(logging.INFO, logger="service")
    reader, writer = await raw(server, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\nContent-Length: 1000", b'{"email"')
    writer.close()
    deadline = time.monotonic() + 30
    while not any("client closed the connection" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        await asyncio.sleep(0.05)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# 11. Roles are enforced once, by the route table.

async def test_the_route_table_enforces_a_new_routes_role(aiohttp_client, settings, auth):
    calls = []

    async def forgetful(request):  # a handler that checks nothing itself
        calls.append(request.path)
        return web.json_response({"ok": True})

    app = create_app(settings)
    add_routes(app, [Route("GET", "/v1/test/admin-only", forgetful, "admin", "test only")])
    client = await aiohttp_client(app)
    assert await error_of(await client.get("/v1/test/admin-only")) == (401, "missing_token")
    for role in ("user", "moderator"):
        resp = await client.get("/v1/test/admin-only", headers=auth(role, role))
        assert await error_of(resp) == (403, "forbidden")
    assert (await client.get("/v1/test/admin-only", headers=auth("root", "admin"))).status == 200
    assert calls == ["/v1/test/admin-only"]


def test_handlers_do_not_check_roles_themselves():
    handlers = REPO / "service" / "handlers"
    for path in handlers.glob("*.py"):
        assert "require_role" not in path.read_text(), f"{path.name}: roles belong to the route table"


# 8. A lookup by SHA-256 answers the verdict, never a rendition of the image.

async def test_a_lookup_by_hash_gets_the_verdict_but_not_the_image(client, auth, face_bytes):
    alice, bob = auth("alice"), auth("bob")
    sent = await post_check(client, alice, face_bytes)
    assert sent["image_sent"] is True
    assert (await client.get(sent["heatmap_url"], headers=alice)).status == 200
    resp = await client.get("/v1/checks", params={"sha256": sent["sha256"]}, headers=bob)
    looked_up = await resp.json()
    assert resp.status == 200 and looked_up["id"] != sent["id"]
    for field in ("verdict", "score", "label", "confidence", "faces", "models_version"):
        assert looked_up[field] == sent[field], field
    assert looked_up["image_sent"] is False and looked_up["heatmap_url"] is None
    resp = await client.get(f"/v1/checks/{looked_up['id']}/heatmap.png", headers=bob)
    assert await error_of(resp) == (404, "no_image")
    stored = await (await client.get(f"/v1/checks/{looked_up['id']}", headers=bob)).json()
    assert stored["heatmap_url"] is None and "thumbnail" not in stored
    own = await post_check(client, bob, face_bytes)  # with the pixels, bob sees the heatmap too
    assert own["image_sent"] is True
    assert (await client.get(own["heatmap_url"], headers=bob)).status == 200

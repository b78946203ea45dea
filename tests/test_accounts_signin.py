"""Sign-in without an outside provider: register, log in, lockout, /v1/me, create-admin, and
tokens from an external JWKS issuer instead."""

import asyncio
import os
import re
import subprocess
import sys
import threading

import jwt
import pytest
from aiohttp import web

from service.app import create_app
from service.auth import passwords
from service.auth.tokens import LocalIssuer
from service.keys import DB, POOLS
from service.settings import Settings
from tests.support.accounts import (
    PASSWORD,
    ask_to_register,
    confirm,
    confirmation_code,
    login,
    register,
)
from tests.support.live import free_port
from tests.support.paths import REPO
from tests.test_mail_delivery import SmtpServer, mail_settings


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


async def test_register_then_sign_in_and_use_the_token(client):
    resp = await register(client, email="  Ann@Example.COM ")
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["user"]["email"] == "ann@example.com" and body["user"]["role"] == "user"
    assert body["user"]["has_password"] is True and body["token_type"] == "Bearer"
    me = await (await client.get("/v1/me", headers=bearer(body["token"]))).json()
    assert me["id"] == body["user"]["id"] and me["email"] == "ann@example.com"

    resp = await login(client, email="ANN@example.com")
    assert resp.status == 200
    token = (await resp.json())["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == body["user"]["id"] and claims["role"] == "user"
    assert (await client.get("/v1/checks", headers=bearer(token))).status == 200
    row = await client.app[DB].fetchone("SELECT password_hash FROM users WHERE id = ?",
                             (claims["sub"],))
    assert row["password_hash"].startswith("scrypt$17$8$1$") and PASSWORD not in row["password_hash"]


async def test_registration_is_validated(client):
    assert (await register(client)).status == 201
    cases = [({"email": "not-an-email", "password": PASSWORD}, 400, "bad_email"),
             ({"email": "bo@example.com", "password": "short"}, 400, "weak_password"),
             ({"email": "bo@example.com"}, 400, "missing_password")]
    for body, status, code in cases:
        resp = await client.post("/v1/auth/register", json=body)
        assert resp.status == status and (await resp.json())["error"] == code, body
    resp = await client.post("/v1/auth/register", data="x")
    assert resp.status == 415


async def test_wrong_passwords_and_unknown_emails_answer_alike(client):
    await register(client)
    wrong = await login(client, password="wrong password!")
    unknown = await login(client, email="nobody@example.com")
    for resp in (wrong, unknown):
        assert resp.status == 401
        assert await resp.json() == {"error": "bad_credentials", "message": "wrong email or password"}


async def outbox(client, kind: str) -> list[dict]:
    return [dict(r) for r in await client.app[DB].fetchall(
        "SELECT recipient, subject, body, user_id FROM outbox WHERE kind = ? ORDER BY id", (kind,))]


async def test_registering_answers_alike_whether_or_not_the_address_has_an_account(client):
    ann = await (await register(client)).json()
    before = await client.app[DB].fetchone("SELECT * FROM users WHERE id = ?", (ann["user"]["id"],))
    taken = await ask_to_register(client, email="ann@example.com", password="another password!")
    free = await ask_to_register(client, email="bob@example.com", password="bob's password!")
    assert taken.status == free.status == 202
    assert await taken.json() == await free.json()
    assert (await taken.json())["status"] == "confirmation_sent"
    # Ann's account is as it was, and she is told someone tried (once an hour, however often).
    await ask_to_register(client, email="ann@example.com", password="yet another one!")
    after = await client.app[DB].fetchone("SELECT * FROM users WHERE id = ?", (ann["user"]["id"],))
    assert dict(after) == dict(before)
    assert (await login(client, password="another password!")).status == 401
    assert (await login(client)).status == 200
    (notice,) = await outbox(client, "register_attempt")
    assert notice["recipient"] == "ann@example.com" and "already has" in notice["body"]
    assert "another password" not in notice["body"]
    # Bob has no account until he confirms: signing in answers like an unknown address.
    assert await client.app[DB].fetchone("SELECT id FROM users WHERE email = 'bob@example.com'") is None
    early = await login(client, email="bob@example.com", password="bob's password!")
    unknown = await login(client, email="nobody@example.com", password="bob's password!")
    assert early.status == unknown.status == 401
    assert await early.json() == await unknown.json()
    resp = await confirm(client, await confirmation_code(client.app, "bob@example.com"),
                         "bob's password!")
    assert resp.status == 201, await resp.text()
    session = await resp.json()
    assert session["user"]["email"] == "bob@example.com" and session["user"]["role"] == "user"
    assert (await client.get("/v1/me", headers=bearer(session["token"]))).status == 200
    assert (await login(client, email="bob@example.com", password="bob's password!")).status == 200


async def test_the_attempt_notice_waits_a_sliding_hour_not_a_clock_hour(client):
    """A notice queued a minute ago in the previous clock hour (another dedupe key) still
    counts: a second attempt now queues nothing."""
    import time

    ann = await (await register(client)).json()
    await ask_to_register(client, email="ann@example.com", password="another password!")
    db = client.app[DB]
    await db.execute("UPDATE outbox SET created_at = ?, dedupe_key = 'register-attempt:earlier'"
                     " WHERE kind = 'register_attempt'", (time.time() - 60,))
    await ask_to_register(client, email="ann@example.com", password="yet another one!")
    assert len(await outbox(client, "register_attempt")) == 1
    # an hour later, a new attempt is told again
    await db.execute("UPDATE outbox SET created_at = ? WHERE kind = 'register_attempt'",
                     (time.time() - 3601,))
    await ask_to_register(client, email="ann@example.com", password="a third one!")
    notices = await outbox(client, "register_attempt")
    assert len(notices) == 2 and all(n["user_id"] == ann["user"]["id"] for n in notices)


async def test_a_confirmation_needs_its_code_and_the_password_chosen_with_it(client):
    # A stranger starts a registration of Vic's address with their own password; Vic registers
    # too. The stranger's link, opened by Vic with Vic's password, confirms nothing.
    await ask_to_register(client, email="vic@example.com", password="the stranger's one")
    stranger_code = await confirmation_code(client.app, "vic@example.com")
    await ask_to_register(client, email="vic@example.com", password="vic's own password")
    vic_code = await confirmation_code(client.app, "vic@example.com")
    assert vic_code != stranger_code
    for code, password in ((stranger_code, "vic's own password"), (vic_code, "the stranger's one"),
                           ("not-a-code", "vic's own password")):
        resp = await confirm(client, code, password)
        assert resp.status == 401 and (await resp.json())["error"] == "bad_confirmation"
    assert (await confirm(client, vic_code, "vic's own password")).status == 201
    for code, password in ((vic_code, "vic's own password"),  # used
                           (stranger_code, "the stranger's one")):  # ended with it
        assert (await confirm(client, code, password)).status == 401
    assert (await login(client, email="vic@example.com", password="the stranger's one")).status == 401
    # An expired code confirms nothing; odd input is a 400.
    await ask_to_register(client, email="old@example.com")
    await client.app[DB].execute("UPDATE registrations SET expires_at = 1 WHERE email = ?",
                                 ("old@example.com",))
    resp = await confirm(client, await confirmation_code(client.app, "old@example.com"))
    assert resp.status == 401
    for body, code in (({"code": 5, "password": PASSWORD}, "bad_code"),
                       ({"code": "", "password": PASSWORD}, "bad_code"),
                       ({"code": "x"}, "missing_password")):
        resp = await client.post("/v1/auth/confirm", json=body)
        assert resp.status == 400 and (await resp.json())["error"] == code, body


async def test_every_answer_about_an_address_costs_a_password_hash(client):
    """Whether or not the address has an account (or the code exists), the same hashing is done:
    with every hashing thread busy and its queue full, each of these waits for it (503 busy)
    instead of answering early."""
    await register(client)
    await ask_to_register(client, email="pending@example.com")
    pool = client.app[POOLS].passwords
    gate = threading.Event()
    blocked = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(pool.limit)]
    try:
        await wait_for(lambda: pool.in_flight == pool.limit)
        attempts = [ask_to_register(client, email="ann@example.com"),
                    ask_to_register(client, email="new@example.com"),
                    login(client, password="wrong password!"),
                    login(client, email="nobody@example.com"),
                    login(client, email="pending@example.com"),
                    confirm(client, "no-such-code")]
        for attempt in attempts:
            resp = await attempt
            assert resp.status == 503 and (await resp.json())["error"] == "busy"
    finally:
        gate.set()
        await asyncio.gather(*blocked)


async def test_the_mails_arrive_and_the_link_finishes_the_registration(aiohttp_client, tmp_path,
                                                                       database_url):
    """Through a real SMTP server: the new address gets a link, the taken one a notice."""
    smtp = SmtpServer(free_port()).start()
    try:
        settings = mail_settings(tmp_path / "data", smtp.port, database_url=database_url)
        client = await aiohttp_client(create_app(settings))
        assert (await register(client)).status == 201  # ann: mail 1
        await ask_to_register(client, email="ann@example.com", password="another password!")
        await ask_to_register(client, email="bob@example.com", password="bob's password!")
        await smtp.wait_for(3)
        subjects = sorted(m["Subject"] for m in smtp.to("ann@example.com"))
        assert subjects == ["Realcheck: confirm your email address",
                            "Realcheck: someone tried to register with your address"]
        (mail,) = smtp.to("bob@example.com")
        text = mail.get_content()
        link = re.search(r"\S+#confirm=\S+", text).group(0)
        assert link.startswith(settings.public_url + "/signin#confirm=")
        resp = await confirm(client, link.split("#confirm=")[1], "bob's password!")
        assert resp.status == 201 and (await resp.json())["user"]["email"] == "bob@example.com"
    finally:
        smtp.stop()


async def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(data_dir=tmp_path / "data", rate_limit_per_minute=0, login_max_failures=3,
                    login_lockout_s=2, database_url=database_url)


async def test_lockout_after_repeated_failures_then_unlocked(client):
    await register(client)
    for _ in range(3):
        assert (await login(client, password="wrong password!")).status == 401
    resp = await login(client)  # the right password, but locked now
    assert resp.status == 429
    body = await resp.json()
    assert body["error"] == "account_locked" and 0 < body["retry_after_s"] <= 3
    await asyncio.sleep(2.1)
    assert (await login(client)).status == 200
    # A success resets the count: two more failures do not lock.
    for _ in range(2):
        assert (await login(client, password="wrong password!")).status == 401
    assert (await login(client)).status == 200


async def test_a_disabled_account_cannot_sign_in(client, auth):
    user = await (await register(client)).json()
    await client.get("/v1/me", headers=auth("root", "admin"))
    resp = await client.patch(f"/v1/admin/users/{user['user']['id']}", json={"disabled": True},
                              headers=auth("root", "admin"))
    assert resp.status == 200
    resp = await login(client)
    assert resp.status == 403 and (await resp.json())["error"] == "account_disabled"
    assert (await client.get("/v1/me", headers=bearer(user["token"]))).status == 403


async def test_me_shows_and_changes_email_and_alerts(client, auth):
    await register(client, email="taken@example.com")
    bob = auth("bob", email="bob@example.com")
    me = await (await client.get("/v1/me", headers=bob)).json()
    assert me == {**me, "id": "bob", "email": "bob@example.com", "role": "user",
                  "email_alerts": False, "queue_alerts": True, "has_password": False}
    resp = await client.patch("/v1/me", json={"email_alerts": True, "email": "Bob@New.example"},
                              headers=bob)
    assert resp.status == 200
    me = await resp.json()
    assert me["email_alerts"] is True and me["email"] == "bob@new.example"
    assert (await (await client.get("/v1/me", headers=bob)).json())["email_alerts"] is True
    cases = [({"email": "taken@example.com"}, 409, "email_taken"),
             ({"email": "nope"}, 400, "bad_email"),
             ({"email_alerts": "yes"}, 400, "bad_field"),
             ({}, 400, "nothing_to_change")]
    for body, status, code in cases:
        resp = await client.patch("/v1/me", json=body, headers=bob)
        assert resp.status == status and (await resp.json())["error"] == code, body
    # Password accounts sign in with their email: it cannot be removed.
    token = (await (await login(client, email="taken@example.com")).json())["token"]
    resp = await client.patch("/v1/me", json={"email": None}, headers=bearer(token))
    assert resp.status == 400 and (await resp.json())["error"] == "email_required"



async def test_two_accounts_taking_one_email_at_once(client, auth):
    """Both passed the "is it in use" check before either wrote; on PostgreSQL the second
    write then broke the unique email and answered 500."""
    db = client.app[DB]
    for attempt in range(4):
        u, v = auth(f"u{attempt}"), auth(f"v{attempt}")
        await client.get("/v1/me", headers=u)
        await client.get("/v1/me", headers=v)
        email = f"same{attempt}@example.com"
        answers = await asyncio.gather(*(client.patch("/v1/me", json={"email": email}, headers=h)
                                         for h in (u, v)))
        assert sorted(r.status for r in answers) == [200, 409], attempt
        refused = next(r for r in answers if r.status == 409)
        assert (await refused.json())["error"] == "email_taken"
        assert await db.fetchval("SELECT COUNT(*) FROM users WHERE email = ?", (email,)) == 1
        owner = await db.fetchval("SELECT id FROM users WHERE email = ?", (email,))
        actions = [e["action"] for e in await db.fetchall(
            "SELECT action FROM audit WHERE action = 'account.update' AND target = ?", (owner,))]
        assert actions == ["account.update"]  # the refused change left no audit row

def run_cli(settings, *args, env=None):
    environ = {**os.environ, "REALCHECK_DATA_DIR": str(settings.data_dir),
               "REALCHECK_DATABASE_URL": settings.database_url, **(env or {})}
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


async def test_create_admin_makes_the_first_admin_of_a_fresh_install(aiohttp_client, settings):
    done = run_cli(settings, "create-admin", "--email", "Root@Example.com",
                   "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    assert "created admin root@example.com" in done.stdout
    client = await aiohttp_client(create_app(settings))
    resp = await login(client, email="root@example.com")
    assert resp.status == 200
    session = await resp.json()
    assert session["user"]["role"] == "admin"
    assert (await client.get("/v1/admin/users", headers=bearer(session["token"]))).status == 200
    again = run_cli(settings, "create-admin", "--email", "two@example.com",
                    "--password", PASSWORD)
    assert again.returncode == 2 and "an admin already exists" in again.stderr
    audit = await (await client.get("/v1/admin/audit", params={"action": "cli.create_admin"},
                                    headers=bearer(session["token"]))).json()
    assert [e["actor"] for e in audit["items"]] == ["cli"]


async def test_create_admin_promotes_a_registered_account_and_checks_its_input(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    user = await (await register(client, email="ann@example.com")).json()
    weak = run_cli(settings, "create-admin", "--email", "new@example.com", "--password", "short")
    assert weak.returncode == 2 and "at least" in weak.stderr
    done = run_cli(settings, "create-admin", "--email", "ann@example.com",
                   env={"REALCHECK_ADMIN_PASSWORD": "ignored for an existing account"})
    assert done.returncode == 0 and "made ann@example.com" in done.stdout
    me = await (await client.get("/v1/me", headers=bearer(user["token"]))).json()
    assert me["role"] == "admin"
    assert (await login(client)).status == 200  # the password did not change


@pytest.fixture
async def external_issuer(aiohttp_server, tmp_path):
    """A stand-in for Clerk: its own key, its JWKS served over HTTP."""
    issuer = LocalIssuer(tmp_path / "clerk-keys", "https://clerk.example", 3600)
    app = web.Application()

    async def jwks(request):
        return web.json_response(issuer.jwks())

    app.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(app)
    return issuer, str(server.make_url("/.well-known/jwks.json"))


async def test_with_an_external_issuer_its_tokens_are_accepted_and_users_created(
        aiohttp_client, tmp_path, external_issuer, database_url):
    issuer, jwks_url = external_issuer
    settings = Settings(data_dir=tmp_path / "ext", jwks_url=jwks_url, issuer="https://clerk.example",
                        allowed_origins=("https://clerk.example",), database_url=database_url)
    client = await aiohttp_client(create_app(settings))
    token = issuer.issue("user_2abc", "moderator", email="mod@clerk.example")
    me = await (await client.get("/v1/me", headers=bearer(token))).json()
    assert me["id"] == "user_2abc" and me["role"] == "moderator" and me["email"] == "mod@clerk.example"
    assert (await client.get("/v1/moderation/items", headers=bearer(token))).status == 200
    for path in ("/v1/auth/register", "/v1/auth/login"):
        resp = await client.post(path, json={"email": "a@b.example", "password": PASSWORD})
        body = await resp.json()
        assert resp.status == 404 and body["error"] == "external_sign_in"
        assert "external provider" in body["message"]
    # A token of the local kind (another key) is not accepted there.
    local = LocalIssuer(tmp_path / "other", "https://clerk.example", 60).issue("x", "admin")
    assert (await client.get("/v1/me", headers=bearer(local))).status == 401


def test_password_hashes_verify_and_tell_when_to_rehash():
    stored = passwords.hash_sync(PASSWORD)
    assert passwords.verify_sync(PASSWORD, stored) and not passwords.verify_sync("nope", stored)
    assert not passwords.needs_rehash(stored)
    weaker = "scrypt$14$8$1$" + stored.split("$", 4)[4]
    assert passwords.needs_rehash(weaker) and not passwords.verify_sync(PASSWORD, weaker)
    assert not passwords.verify_sync(PASSWORD, "garbage")

"""Several service instances on one database (in this process; ``test_replicas_processes`` runs
real processes): what only the database can keep consistent between them. Both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time

import aiohttp

from service.app import create_app
from service.keys import DB
from service.mail import outbox
from tests.support.api import post_check
from tests.support.live import free_port
from tests.test_accounts_signin import PASSWORD, login, register
from tests.test_mail_delivery import SmtpServer, mail_settings


async def replicas(aiohttp_client, settings, n: int = 2, **changes):
    settings = dataclasses.replace(settings, **changes)
    return [await aiohttp_client(create_app(settings)) for _ in range(n)]


async def test_one_new_image_scored_by_two_replicas_is_stored_once(aiohttp_client, settings, auth,
                                                                   fake_face_bytes):
    one, two = await replicas(aiohttp_client, settings)
    first, second = await asyncio.gather(post_check(one, auth("ann"), fake_face_bytes),
                                         post_check(two, auth("bob"), fake_face_bytes))
    sha = hashlib.sha256(fake_face_bytes).hexdigest()
    assert first["sha256"] == second["sha256"] == sha
    db = one.app[DB]
    assert await db.fetchval("SELECT COUNT(*) FROM images WHERE sha256 = ?", (sha,)) == 1
    assert await db.fetchval("SELECT COUNT(*) FROM checks WHERE sha256 = ?", (sha,)) == 2
    if first["verdict"] in ("fake", "uncertain") or second["verdict"] in ("fake", "uncertain"):
        assert await db.fetchval("SELECT COUNT(*) FROM flags WHERE sha256 = ?", (sha,)) == 1
        assert await db.fetchval("SELECT COUNT(*) FROM flag_events WHERE kind = 'flagged'") == 1


async def test_the_rate_limit_is_shared_by_all_replicas(aiohttp_client, settings, auth, face_bytes):
    one, two = await replicas(aiohttp_client, settings, rate_limit_per_minute=2)

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("image", face_bytes, filename="f.jpg", content_type="image/jpeg")
        return data

    assert (await one.post("/v1/checks", data=form(), headers=auth("ann"))).status == 201
    assert (await two.post("/v1/checks", data=form(), headers=auth("ann"))).status == 201
    for client in (one, two):  # the bucket both drew from is empty on both
        resp = await client.post("/v1/checks", data=form(), headers=auth("ann"))
        assert resp.status == 429 and (await resp.json())["error"] == "rate_limited"
    assert (await two.post("/v1/checks", data=form(), headers=auth("bob"))).status == 201


async def test_a_login_lockout_is_shared_by_all_replicas(aiohttp_client, settings):
    one, two = await replicas(aiohttp_client, settings, login_max_failures=4, login_lockout_s=60)
    assert (await register(one)).status == 201
    wrong = [login(c, password="not the password") for c in (one, two, one, two)]
    assert [r.status for r in await asyncio.gather(*wrong)] == [401] * 4
    for client in (one, two):  # four failures across both: locked on both, even with the password
        resp = await login(client, password=PASSWORD)
        assert resp.status == 429 and (await resp.json())["error"] == "account_locked"


async def test_each_queued_mail_is_sent_once_by_competing_senders(aiohttp_client, settings):
    smtp = SmtpServer(free_port()).start()
    try:
        base = mail_settings(settings.data_dir, smtp.port, database_url=settings.database_url)
        apps = await replicas(aiohttp_client, base, n=3)
        db = apps[0].app[DB]
        async with db.transaction() as tx:
            for i in range(30):
                await outbox.enqueue(tx, kind="test", recipient=f"r{i}@example.com", subject=f"m{i}",
                                     body="hello", dedupe_key=f"test:{i}")
        deadline = time.monotonic() + 30
        while await db.fetchval("SELECT COUNT(*) FROM outbox WHERE state = 'sent'") < 30:
            assert time.monotonic() < deadline, await outbox.counts(db)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # more sender passes on every replica: still once each
        assert sorted(m["To"] for m in smtp.messages) == sorted(f"r{i}@example.com" for i in range(30))
        assert await db.fetchval("SELECT MAX(attempts) FROM outbox") == 1
    finally:
        smtp.stop()

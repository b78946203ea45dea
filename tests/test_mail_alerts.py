"""Which events email whom, with what: fake results, new queue items (now or as a digest),
decisions on reports. Real SMTP server (aiosmtpd), real app."""

import asyncio
import dataclasses

import pytest

from service.app import create_app
from tests.support.api import post_check as check
from tests.support.live import free_port
from tests.support.paths import require_shared_data, sample_images
from tests.test_mail_delivery import SmtpServer, mail_settings


@pytest.fixture
def smtp():
    server = SmtpServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, smtp, database_url):
    return mail_settings(tmp_path / "data", smtp.port, database_url=database_url)


@pytest.fixture
def images() -> list[bytes]:
    require_shared_data()
    return [p.read_bytes() for p in sample_images(3, source="tpdne-unsplash", label="fake")]




async def report(client, headers, check_id, note=None) -> str:
    resp = await client.post(f"/v1/checks/{check_id}/report", json={"note": note}, headers=headers)
    assert resp.status == 201
    return (await resp.json())["flag_id"]


async def decide(client, mod, item_id, decision, version, note=None) -> None:
    resp = await client.post(f"/v1/moderation/items/{item_id}/decision", headers=mod,
                             json={"decision": decision, "version": version, "note": note})
    assert resp.status == 200, await resp.text()


@pytest.fixture
def mod(auth) -> dict:
    """A moderator without an email address (so they get no mail)."""
    return auth("mo", "moderator")


async def test_a_fake_result_emails_a_user_who_turned_alerts_on_once_per_image(client, auth, mod, smtp,
                                                                               images):
    alice = auth("alice")
    carol, dave = auth("carol", email="carol@example.com"), auth("dave", email="dave@example.com")
    resp = await client.patch("/v1/me", json={"email_alerts": True}, headers=carol)
    assert (await resp.json())["email_alerts"] is True
    await client.get("/v1/me", headers=dave)  # alerts off (the default)
    item = await report(client, alice, (await check(client, alice, images[0]))["id"])
    await decide(client, mod, item, "fake", 1, note="a generated face")  # every check is fake from now on

    first = await check(client, carol, images[0], "https://news.example/story")
    assert first["verdict"] == "fake"
    await check(client, carol, images[0], "https://other.example/")  # same image again
    lookup = await client.get("/v1/checks", params={"sha256": first["sha256"]}, headers=carol)
    assert (await lookup.json())["verdict"] == "fake"
    await check(client, dave, images[0])
    (msg,) = await smtp.wait_for(1)
    assert msg["To"] == "carol@example.com"
    assert msg["Subject"] == "Realcheck: an image you checked looks fake"
    body = msg.get_content()
    assert "https://news.example/story" in body and first["id"] in body
    assert "Moderators have confirmed" in body and "Report a wrong verdict" in body
    assert msg["X-Realcheck-Kind"] == "fake_alert"
    # Alerts off again: nothing for a new fake image.
    await client.patch("/v1/me", json={"email_alerts": False}, headers=carol)
    item2 = await report(client, alice, (await check(client, alice, images[1]))["id"])
    await decide(client, mod, item2, "fake", 1)
    await check(client, carol, images[1])
    await asyncio.sleep(0.6)
    assert len(smtp.messages) == 1


async def test_moderators_hear_of_new_items_immediately(client, auth, smtp, images):
    m1, m2 = auth("m1", "moderator", email="m1@example.com"), auth("m2", "moderator", email="m2@example.com")
    a1, u1 = auth("a1", "admin", email="a1@example.com"), auth("u1", email="u1@example.com")
    for h in (m1, m2, a1, u1):
        await client.get("/v1/me", headers=h)
    resp = await client.patch("/v1/me", json={"queue_alerts": False}, headers=m2)
    assert (await resp.json())["queue_alerts"] is False
    alice = auth("alice")

    first = await report(client, alice, (await check(client, alice, images[0]))["id"], note="odd")
    await smtp.wait_for(2)
    assert sorted(m["To"] for m in smtp.messages) == ["a1@example.com", "m1@example.com"]
    for msg in smtp.messages:
        assert msg["Subject"] == "Realcheck: 1 new flagged item to review"
        assert f"/dashboard#item={first}" in msg.get_content()

    second = await report(client, alice, (await check(client, alice, images[1]))["id"])
    await smtp.wait_for(4)
    later = smtp.to("m1@example.com")[1].get_content()
    assert f"#item={second}" in later and f"#item={first}" not in later
    assert len(smtp.to("a1@example.com")) == 2 and not smtp.to("m2@example.com")
    assert not smtp.to("u1@example.com")


async def test_moderators_get_a_digest_when_configured(aiohttp_client, auth, settings, smtp, images):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, mail_digest_s=3)))
    mod = auth("m1", "moderator", email="m1@example.com")
    await client.get("/v1/me", headers=mod)
    alice = auth("alice")
    ids = [await report(client, alice, (await check(client, alice, data))["id"]) for data in images[:2]]
    await asyncio.sleep(1)
    assert smtp.messages == []  # not before the digest is due
    (msg,) = await smtp.wait_for(1)
    assert msg["Subject"] == "Realcheck: 2 new flagged items to review"
    body = msg.get_content()
    assert body.startswith("Digest") and all(f"#item={i}" in body for i in ids)


async def test_reporters_hear_of_the_decision_once(client, auth, mod, smtp, images):
    alice, bob = auth("alice", email="alice@example.com"), auth("bob", email="bob@example.com")
    carol = auth("carol", email="carol@example.com")  # checked, did not report
    a = await check(client, alice, images[0], "https://a.example/post")
    b = await check(client, bob, images[0])
    await check(client, carol, images[0])
    item = await report(client, alice, a["id"], note="my friend")
    await report(client, bob, b["id"])
    await decide(client, mod, item, "dismissed", 1, note="nothing wrong with the verdict")
    await smtp.wait_for(2)
    assert sorted(m["To"] for m in smtp.messages) == ["alice@example.com", "bob@example.com"]
    alice_msg = smtp.to("alice@example.com")[0]
    assert alice_msg["Subject"] == "Realcheck: moderators decided on your report"
    body = alice_msg.get_content()
    assert "dismissed the report" in body and "nothing wrong with the verdict" in body
    assert "https://a.example/post" in body

    await decide(client, mod, item, "real", 2)  # a change of mind: reporters were told already
    await asyncio.sleep(0.6)
    assert len(smtp.messages) == 2
    await report(client, bob, b["id"], note="still wrong")  # bob disagrees: reopened
    await decide(client, mod, item, "fake", 4, note="on second look, generated")
    await smtp.wait_for(3)
    latest = smtp.to("bob@example.com")[-1].get_content()
    assert "confirmed it is fake" in latest and "on second look" in latest
    assert len(smtp.to("alice@example.com")) == 1 and not smtp.to("carol@example.com")

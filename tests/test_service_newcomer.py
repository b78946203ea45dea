"""What a newcomer meets in the API (issue 10): the issuer named in a refusal, a token command
that cannot pick the wrong issuer, the landing page, thresholds read from the service, one
check per user and image (also across the upgrade of an older database), batch lookups and
share links."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

import aiosqlite
import pytest

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.settings import REPO_ROOT, Settings
from service.store import Duplicate
from service.store.migrations import statements_for
from service.store.sqlite import SqliteDatabase
from tests.support.api import post_check
from tests.support.paths import require_shared_data, sample_images
from tests.test_service_cli import cli

ENSEMBLE = json.loads((REPO_ROOT / "models" / "ensemble.json").read_text())


async def test_wrong_issuer_names_both_issuers(client, settings):
    other = LocalIssuer(settings.data_dir / "keys", "http://127.0.0.1:9999", 600)
    resp = await client.get("/v1/checks", headers={"Authorization": "Bearer " + other.issue("a")})
    body = await resp.json()
    assert resp.status == 401 and body["error"] == "wrong_issuer"
    assert "'http://127.0.0.1:9999'" in body["message"]
    assert f"'{settings.issuer}'" in body["message"]


async def test_token_command_signs_for_the_service_started_on_its_data_folder(
        aiohttp_client, tmp_path):
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, port=18555, rate_limit_per_minute=0)
    client = await aiohttp_client(create_app(settings))  # started on port 18555
    made = cli("token", "--sub", "alice", REALCHECK_DATA_DIR=data_dir)  # no REALCHECK_PORT
    assert made.returncode == 0, made.stderr
    assert "http://127.0.0.1:18555" in made.stderr
    resp = await client.get("/v1/checks", headers={"Authorization": "Bearer " + made.stdout.strip()})
    assert resp.status == 200, await resp.text()
    # An explicit port still wins (a token for another service on purpose).
    other = cli("token", "--sub", "alice", REALCHECK_DATA_DIR=data_dir, REALCHECK_PORT=18556)
    resp = await client.get("/v1/checks", headers={"Authorization": "Bearer " + other.stdout.strip()})
    assert resp.status == 401 and (await resp.json())["error"] == "wrong_issuer"


async def test_landing_page_and_favicon(client):
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    text = await resp.text()
    for href in ('href="/signin"', 'href="/dashboard"', 'href="/help"', 'href="/help#install"'):
        assert href in text
    assert "browser extension" in text
    icon = await client.get("/favicon.ico")
    assert icon.status == 200 and (await icon.read())[:8] == b"\x89PNG\r\n\x1a\n"


async def test_health_gives_the_thresholds_of_the_model_card(client):
    body = await (await client.get("/health")).json()
    lo, hi = ENSEMBLE["uncertain_band"]
    assert body["thresholds"]["fake_from"] == hi and body["thresholds"]["real_below"] == lo
    assert body["thresholds"]["label_threshold"] == ENSEMBLE["threshold"]


async def test_help_page_states_limits_and_no_face(client):
    text = await (await client.get("/help")).text()
    assert "No face found: not judged" in text and "face swaps" in text.lower()
    assert "found nothing generated" not in text
    per_source = (ENSEMBLE.get("metrics") or {}).get("test", {}).get("per_source")
    if per_source:
        dfdc = per_source["dfdc-faces"]["auc"]
        assert f"{dfdc:.2f}" in text, "the measured face-swap figure, read from the card"
    else:
        assert "no measured figures" in text
    if not ENSEMBLE.get("trained", True):
        assert "untrained placeholders" in text
    assert f"{ENSEMBLE['uncertain_band'][1]:.2f}" in text


async def test_batch_lookup(client, auth, face_bytes, fake_face_bytes):
    known = await post_check(client, auth("alice"), face_bytes)
    unknown = hashlib.sha256(fake_face_bytes).hexdigest()
    resp = await client.post("/v1/lookups", headers=auth("bob"), json={
        "sha256": [known["sha256"].upper(), unknown, known["sha256"]],
        "page_url": "https://news.example/p"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body["results"]) == {known["sha256"], unknown} and body["unknown"] == [unknown]
    hit = body["results"][known["sha256"]]
    assert hit["cached"] is True and hit["detectors"] == known["detectors"]
    assert hit["page_url"] == "https://news.example/p"
    mine = await (await client.get("/v1/checks", headers=auth("bob"))).json()
    assert [c["id"] for c in mine["items"]] == [hit["id"]], "the lookup is bob's check"
    for bad in ({"sha256": []}, {"sha256": "abc"}, {"sha256": ["g" * 64]},
                {"sha256": ["a" * 64] * 501}):
        resp = await client.post("/v1/lookups", headers=auth("bob"), json=bad)
        assert resp.status == 400 and (await resp.json())["error"] == "bad_sha256"


async def test_batch_lookup_counts_against_the_limit(aiohttp_client, settings, auth):
    client = await aiohttp_client(create_app(Settings(data_dir=settings.data_dir,
                                                      rate_limit_per_minute=10)))
    hashes = [f"{i:064x}" for i in range(100)]  # 100 lookups at 0.1 each: the whole minute
    assert (await client.post("/v1/lookups", headers=auth(), json={"sha256": hashes})).status == 200
    resp = await client.post("/v1/lookups", headers=auth(), json={"sha256": hashes[:1]})
    assert resp.status == 429


async def test_share_link_shows_the_check_until_revoked(client, auth, face_bytes):
    made = await post_check(client, auth("alice"), face_bytes)
    url = f"/v1/checks/{made['id']}/share"
    assert (await client.post(url, headers=auth("bob"))).status == 404, "only the owner shares"
    assert (await client.post(url, headers=auth("mo", "moderator"))).status == 404
    resp = await client.post(url, headers=auth("alice"))
    assert resp.status == 201
    share = await resp.json()
    token = share["token"]
    assert len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)  # 256 random bits
    assert share["url"].endswith("/s/" + token)
    again = await client.post(url, headers=auth("alice"))
    assert again.status == 200 and (await again.json())["token"] == token
    assert (await (await client.get(url, headers=auth("alice"))).json())["share"]["token"] == token

    page = await client.get(f"/s/{token}")  # no token needed
    assert page.status == 200
    text = await page.text()
    assert f'data-verdict="{made["verdict"]}"' in text and made["sha256"] in text
    assert text.count('class="face-row"') == len(made["faces"])
    assert "What the detectors cannot judge" in text
    for part in ("image.jpg", "heatmap.png"):
        resp = await client.get(f"/s/{token}/{part}")
        assert resp.status == 200 and resp.content_type.startswith("image/")
    assert (await client.get(f"/s/{token[:-1]}x")).status == 404

    revoked = await client.delete(url, headers=auth("alice"))
    assert (await revoked.json()) == {"revoked": 1}
    gone = await client.get(f"/s/{token}")
    assert gone.status == 404 and (await gone.json())["error"] == "not_found"
    assert (await client.get(f"/s/{token}/image.jpg")).status == 404
    fresh = await (await client.post(url, headers=auth("alice"))).json()
    assert fresh["token"] != token, "a revoked link never comes back"



async def test_sharing_twice_at_once_makes_one_link(client, auth, face_bytes):
    """On PostgreSQL two requests at once both found no link and made one each (201, 201):
    the owner held a link their check's share state did not show."""
    alice = auth("alice")
    made = await post_check(client, alice, face_bytes)
    url = f"/v1/checks/{made['id']}/share"
    for attempt in range(5):  # each after revoking the last: no live link to find
        answers = await asyncio.gather(*(client.post(url, headers=alice) for _ in range(3)))
        assert sorted(r.status for r in answers) == [200, 200, 201], attempt
        tokens = {(await r.json())["token"] for r in answers}
        assert len(tokens) == 1
        shown = (await (await client.get(url, headers=alice)).json())["share"]["token"]
        assert tokens == {shown}
        assert await (await client.delete(url, headers=alice)).json() == {"revoked": 1}

def test_the_share_page_gives_a_confidence_with_fake_only():
    """A REAL is no proof (fakes of generators the detectors never saw often score as real), so
    the share page never says how sure of it the detectors are; a FAKE keeps its confidence."""
    from service.handlers.shares import _summary

    real = _summary({"verdict": "real", "label": "REAL", "score": 0.04, "confidence": 96.0})
    assert "%" not in real and "not proof" in real and "0.04" in real
    fake = _summary({"verdict": "fake", "label": "FAKE", "score": 0.97, "confidence": 91.0})
    assert "91 % sure of FAKE" in fake


async def test_upgrade_folds_duplicate_checks(tmp_path):
    """A database of the previous version, with 3 rows for one user and image, is upgraded in
    place: one check with count 3, its pages kept, reports pointing at the kept check."""
    path = tmp_path / "old.sqlite3"
    db = await aiosqlite.connect(path, isolation_level=None)
    for number in (1, 2, 3):
        for sql in statements_for(number, "sqlite"):
            await db.execute(sql)
    await db.execute("PRAGMA user_version=3")
    rows = [("c1", "u1", 1.0, "https://a.example/"), ("c2", "u1", 2.0, "https://b.example/"),
            ("c3", "u1", 3.0, "https://a.example/"), ("c4", "u2", 4.0, None)]
    for cid, user, at, page in rows:
        await db.execute("INSERT INTO checks (id, sha256, user_id, verdict, score, result, page_url,"
                         " created_at) VALUES (?, 'h', ?, 'fake', 0.9, '{}', ?, ?)",
                         (cid, user, page, at))
    await db.execute("INSERT INTO flags (id, sha256, reason, queued_at, created_at, last_seen_at)"
                     " VALUES ('f', 'h', 'report', 1, 1, 1)")
    await db.execute("INSERT INTO flag_reports (id, flag_id, check_id, user_id, created_at)"
                     " VALUES ('r', 'f', 'c3', 'u1', 3)")
    await db.close()

    db = await SqliteDatabase.open(path)
    try:
        got = [tuple(r) for r in await db.fetchall(
            "SELECT id, user_id, seen_count, last_seen_at FROM checks ORDER BY id")]
        assert got == [("c1", "u1", 3, 3.0), ("c4", "u2", 1, 4.0)]
        pages = [tuple(r) for r in await db.fetchall(
            "SELECT check_id, page_url, seen_count FROM check_pages ORDER BY page_url")]
        assert pages == [("c1", "https://a.example/", 2), ("c1", "https://b.example/", 1)]
        assert await db.fetchval("SELECT check_id FROM flag_reports") == "c1"
        with pytest.raises(Duplicate):  # the unique index of one check per user and image
            await db.execute("INSERT INTO checks (id, sha256, user_id, verdict, score, result,"
                             " created_at) VALUES ('c9', 'h', 'u1', 'real', 0.1, '{}', 9)")
    finally:
        await db.close()


async def test_a_group_photo_answers_every_face(client, auth):
    require_shared_data()
    import cv2
    import numpy as np

    from tests.conftest import encode

    photos = [cv2.imread(str(p)) for p in sample_images(3, source="tpdne-unsplash", label="fake")]
    body = await post_check(client, auth(), encode(np.hstack(photos), ".jpg"))
    assert len(body["faces"]) >= 2
    d = body["decisive_face"]
    assert body["detectors"]["decisive_face"] == d
    assert body["detectors"]["score"] == body["faces"][d]["score"] == body["score"]

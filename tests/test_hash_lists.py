"""Hash lists: admins export decided items as CSV and import other teams' lists, whose entries
act like decisions on near-duplicates, without any image changing hands."""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.settings import Settings
from tests.support.api import post_check
from tests.support.copies import COPIES
from tests.support.paths import require_shared_data, sample_images


@pytest.fixture
def photos() -> list[bytes]:
    require_shared_data()
    return [p.read_bytes() for p in sample_images(2, source="celebrity-press")]


def scene() -> bytes:
    """A faceless picture with enough structure for a good PDQ hash (soft blobs of colour)."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    big = cv2.resize(small, (480, 360), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


async def _decide_on(client, user, mod, data: bytes, decision: str, note: str) -> dict:
    check = await post_check(client, user, data)
    resp = await client.post(f"/v1/checks/{check['id']}/report", json={}, headers=user)
    item_id = (await resp.json())["flag_id"]
    item = await (await client.get(f"/v1/moderation/items/{item_id}", headers=mod)).json()
    resp = await client.post(f"/v1/moderation/items/{item_id}/decision", headers=mod,
                             json={"decision": decision, "version": item["version"], "note": note})
    assert resp.status == 200, await resp.text()
    return check


async def test_export_then_import_elsewhere_applies_the_decision(client, auth, photos,
                                                                 aiohttp_client, tmp_path,
                                                                 database_url):
    """An entry is a PDQ hash and a verdict, no pixels: it applies to copies of faceless
    pictures, but never to an image with a face, whose face could not be compared (a face swap
    keeps the PDQ hash of the frame it was made from: service/moderation/near.py)."""
    alice, mod, admin = auth("alice"), auth("mo", "moderator"), auth("ad", "admin")
    picture = scene()
    faceless = await _decide_on(client, alice, mod, picture, "fake", "made-up map")
    assert faceless["face_found"] is False and faceless["pdq"]["quality"] >= 50
    face = await _decide_on(client, alice, mod, photos[0], "fake", "known face swap")
    assert face["face_found"] is True
    resp = await client.get("/v1/admin/hashlist.csv", headers=admin)
    assert resp.status == 200 and resp.content_type == "text/csv"
    text = await resp.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [
        {"pdq": faceless["pdq"]["hash"], "verdict": "fake", "note": "made-up map",
         "decided_at": rows[0]["decided_at"], "source": "local"},
        {"pdq": face["pdq"]["hash"], "verdict": "fake", "note": "known face swap",
         "decided_at": rows[1]["decided_at"], "source": "local"}]
    assert rows[0]["decided_at"].endswith("+00:00")

    # Another team's service, with its own (empty) database, imports the list.
    other_dir = tmp_path / "other"
    if database_url:
        pytest.skip("one PostgreSQL database per test: the second service runs on SQLite only")
    other = await aiohttp_client(create_app(Settings(data_dir=other_dir, rate_limit_per_minute=0)))
    issuer = LocalIssuer(other_dir / "keys", Settings(data_dir=other_dir).issuer, 3600)
    their_admin = {"Authorization": "Bearer " + issuer.issue("ad2", "admin")}
    their_user = {"Authorization": "Bearer " + issuer.issue("bob", "user")}
    resp = await other.post("/v1/admin/hashlist", params={"source": "team-a"}, data=text,
                            headers={**their_admin, "Content-Type": "text/csv"})
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {"source": "team-a", "added": 2, "updated": 0}
    # A re-encoded copy checked there gets the imported decision, with its match.
    copy = await post_check(other, their_user, COPIES["png"](picture))
    m = copy["moderation"]
    assert m["verdict"] == "fake" and m["decided_by"] == "hash list"
    assert m["match"]["source"] == "team-a" and m["match"]["distance"] <= 31
    assert copy["verdict"] == "fake" and "imported hash list" in copy["note"]
    # A copy of the face photo does not: its face cannot be compared with a hash.
    assert (await post_check(other, their_user, COPIES["png"](photos[0])))["moderation"] is None
    # Another photo does not either.
    assert (await post_check(other, their_user, photos[1]))["moderation"] is None
    # Importing the same source again updates instead of adding.
    resp = await other.post("/v1/admin/hashlist", params={"source": "team-a"},
                            data=text.replace(",fake,", ",real,"),
                            headers={**their_admin, "Content-Type": "text/csv"})
    assert await resp.json() == {"source": "team-a", "added": 0, "updated": 2}
    again = await post_check(other, their_user, COPIES["webp"](picture))
    assert again["moderation"]["verdict"] == "real"
    # Their export carries the imported entries with their source.
    exported = await (await other.get("/v1/admin/hashlist.csv", headers=their_admin)).text()
    assert [r["source"] for r in csv.DictReader(io.StringIO(exported))] == ["team-a"] * 2


async def test_bad_lists_are_refused_whole_with_their_lines(client, auth):
    admin = auth("ad", "admin")
    good = "a" * 64
    body = ("pdq,verdict,note,decided_at\n"
            f"{good},fake,ok,2026-01-02T03:04:05Z\n"
            "xyz,fake,,\n"
            f"{good},maybe,,\n"
            f"{good},real,,yesterday\n")
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data=body,
                             headers={**admin, "Content-Type": "text/csv"})
    assert resp.status == 400
    err = await resp.json()
    assert err["error"] == "bad_csv"
    assert [x["line"] for x in err["lines"]] == [3, 4, 5]
    exported = await (await client.get("/v1/admin/hashlist.csv", headers=admin)).text()
    assert exported.strip() == "pdq,verdict,note,decided_at,source"  # nothing was imported
    for params, data, ctype, code in [
            ({}, body, "text/csv", "bad_source"),
            ({"source": "local"}, body, "text/csv", "bad_source"),
            ({"source": "t"}, "hash,decision\n", "text/csv", "bad_csv"),
            ({"source": "t"}, b"\xff\xfe", "text/csv", "bad_csv")]:
        resp = await client.post("/v1/admin/hashlist", params=params, data=data,
                                 headers={**admin, "Content-Type": ctype})
        assert resp.status == 400 and (await resp.json())["error"] == code
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, json={},
                             headers=admin)
    assert resp.status == 415


async def test_only_admins_touch_hash_lists(client, auth):
    for role in ("user", "moderator"):
        h = auth("x", role)
        assert (await client.get("/v1/admin/hashlist.csv", headers=h)).status == 403
        resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data="pdq,verdict\n",
                                 headers={**h, "Content-Type": "text/csv"})
        assert resp.status == 403

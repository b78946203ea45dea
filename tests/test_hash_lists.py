"""Hash lists: admins export decided items as CSV and import other teams' lists, whose entries
act like decisions on near-duplicates, without any image changing hands. An entry carries its
item's PDQ hash, window hashes and face descriptors (service/pdq/descriptors.py), so it follows
re-encoded copies of a face photo, but not a face swap of the same frame nor another photo of
the same person."""

from __future__ import annotations

import csv
import io
import re

import cv2
import numpy as np
import pytest

from service.app import create_app
from service.auth.tokens import LocalIssuer
from service.keys import DB
from service.pdq.hashing import distance
from service.settings import Settings
from tests.support.api import post_check
from tests.support.copies import COPIES
from tests.support.paths import (
    FACELESS_SWAP,
    SHARED_DATA,
    manifest,
    require_shared_data,
    sample_images,
)

FACE = re.compile(r"^(0|1)\.\d{4} (0|1)\.\d{4} (0|1)\.\d{4} (0|1)\.\d{4} [0-9a-f]{128}$")


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


def swap_pair() -> tuple[bytes, bytes]:
    """A DFDC test-split real frame and the face swap made from it: the first such pair whose
    PDQ hashes meet (the test checks it through the API)."""
    require_shared_data()
    groups: dict[str, list[dict]] = {}
    for r in manifest():
        if r["source"] == "dfdc-faces" and r["split"] == "test":
            groups.setdefault(r["group"], []).append(r)
    group = [g for g in groups.values() if len(g) > 1][2]  # #2 of the test split's groups
    return tuple((SHARED_DATA / next(r for r in group if r["label"] == label)["path"]).read_bytes()
                 for label in ("real", "fake"))


def faceless_swap_pair() -> tuple[bytes, bytes]:
    require_shared_data()
    return tuple((SHARED_DATA / p).read_bytes() for p in FACELESS_SWAP)


def same_person() -> tuple[bytes, bytes]:
    """Two photos of one person from one webcam burst, 6 s apart: PDQ alone takes them for
    copies (tests/test_near_duplicates.py::BURST), the faces do not."""
    require_shared_data()
    return tuple((SHARED_DATA / p).read_bytes() for p in (
        "snapshots/real/2020-06-23-120235.jpg", "snapshots/real/2020-06-23-120241.jpg"))


async def _decide_on(client, user, mod, data: bytes, decision: str, note: str) -> dict:
    check = await post_check(client, user, data)
    resp = await client.post(f"/v1/checks/{check['id']}/report", json={}, headers=user)
    item_id = (await resp.json())["flag_id"]
    item = await (await client.get(f"/v1/moderation/items/{item_id}", headers=mod)).json()
    resp = await client.post(f"/v1/moderation/items/{item_id}/decision", headers=mod,
                             json={"decision": decision, "version": item["version"], "note": note})
    assert resp.status == 200, await resp.text()
    return check


@pytest.fixture
async def other(aiohttp_client, tmp_path, database_url):
    """Another team's service, with its own (empty) SQLite database: (client, admin, user)."""
    if database_url:
        pytest.skip("one PostgreSQL database per test: the second service runs on SQLite only")
    data_dir = tmp_path / "other"
    client = await aiohttp_client(create_app(Settings(data_dir=data_dir,
                                                      rate_limit_per_minute=0)))
    issuer = LocalIssuer(data_dir / "keys", Settings(data_dir=data_dir).issuer, 3600)
    return (client, {"Authorization": "Bearer " + issuer.issue("ad2", "admin")},
            {"Authorization": "Bearer " + issuer.issue("bob", "user")})


async def _import(client, admin, text: str, source: str = "team-a"):
    return await client.post("/v1/admin/hashlist", params={"source": source}, data=text,
                             headers={**admin, "Content-Type": "text/csv"})


async def _export(client, admin) -> str:
    resp = await client.get("/v1/admin/hashlist.csv", headers=admin)
    assert resp.status == 200 and resp.content_type == "text/csv"
    return await resp.text()


async def test_imported_entries_follow_re_encoded_copies_of_face_photos(client, auth, photos,
                                                                        other):
    alice, mod, admin = auth("alice"), auth("mo", "moderator"), auth("ad", "admin")
    picture = scene()
    faceless = await _decide_on(client, alice, mod, picture, "fake", "made-up map")
    assert faceless["face_found"] is False and faceless["pdq"]["quality"] >= 50
    face = await _decide_on(client, alice, mod, photos[0], "fake", "known face swap")
    assert face["face_found"] is True and len(face["faces"]) == 1
    text = await _export(client, admin)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["pdq"], r["verdict"], r["note"], r["source"]) for r in rows] == [
        (faceless["pdq"]["hash"], "fake", "made-up map", "local"),
        (face["pdq"]["hash"], "fake", "known face swap", "local")]
    assert all(r["decided_at"].endswith("+00:00") for r in rows)
    # Each entry carries its nine window hashes; the face photo one descriptor per face: a box
    # and 64 bytes (an 8x8 block signature), no image; the faceless picture one of its whole
    # frame (less the band along its edges that the face check leaves out).
    for r in rows:
        windows = r["windows"].split()
        assert len(windows) == 9 and all(re.fullmatch("[0-9a-f]{64}", h) for h in windows)
    assert FACE.match(rows[0]["faces"]), rows[0]["faces"]
    assert rows[0]["faces"].startswith("0.0600 0.0600 0.9400 0.9400 ")
    assert FACE.match(rows[1]["faces"]), rows[1]["faces"]

    # Another team's service imports the list.
    there, their_admin, bob = other
    resp = await _import(there, their_admin, text)
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {"source": "team-a", "added": 2, "updated": 0}
    # Every kind of copy of the face photo gets the imported decision, through its face.
    for name, made in COPIES.items():
        copy = await post_check(there, bob, made(photos[0]))
        m = copy["moderation"]
        assert m is not None, f"{name}: the imported decision did not follow"
        assert m["verdict"] == "fake" and m["decided_by"] == "hash list", name
        assert m["match"]["source"] == "team-a" and 0 <= m["match"]["distance"] <= 31
        assert copy["verdict"] == "fake" and "imported hash list" in copy["note"]
    # So do copies of the faceless picture; another photo does not.
    copy = await post_check(there, bob, COPIES["png"](picture))
    assert copy["moderation"]["verdict"] == "fake"
    assert copy["moderation"]["match"]["source"] == "team-a"
    assert (await post_check(there, bob, photos[1]))["moderation"] is None
    # Importing the same source again updates instead of adding.
    resp = await _import(there, their_admin, text.replace(",fake,", ",real,"))
    assert await resp.json() == {"source": "team-a", "added": 0, "updated": 2}
    assert (await post_check(there, bob, COPIES["webp"](picture)))["moderation"]["verdict"] \
        == "real"
    assert (await post_check(there, bob, COPIES["half"](photos[0])))["moderation"]["verdict"] \
        == "real"
    # Their export carries the imported entries with their source, windows and faces.
    exported = list(csv.DictReader(io.StringIO(await _export(there, their_admin))))
    assert [(r["source"], r["windows"], r["faces"]) for r in exported] == [
        ("team-a", r["windows"], r["faces"]) for r in rows]


async def test_imported_entries_do_not_follow_a_face_swap_or_another_photo_of_the_person(
        client, auth, other):
    """The worst error: a "real" decision shared by another team handed to a face swap of the
    same frame, whose PDQ hash is within the threshold of the frame's."""
    alice, mod, admin = auth("alice"), auth("mo", "moderator"), auth("ad", "admin")
    frame, swap = swap_pair()
    person, same_person_again = same_person()
    bare_frame, bare_swap = faceless_swap_pair()
    decided = await _decide_on(client, alice, mod, frame, "real", "checked with the source")
    first_photo = await _decide_on(client, alice, mod, person, "fake", "")
    bare = await _decide_on(client, alice, mod, bare_frame, "real", "")
    assert bare["face_found"] is False
    there, their_admin, bob = other
    resp = await _import(there, their_admin, await _export(client, admin))
    assert resp.status == 201, await resp.text()

    swapped = await post_check(there, bob, swap)
    assert distance(swapped["pdq"]["hash"], decided["pdq"]["hash"]) <= 31  # PDQ alone: a copy
    assert swapped["moderation"] is None
    assert swapped["verdict"] == swapped["detectors"]["verdict"]
    again = await post_check(there, bob, same_person_again)
    assert distance(again["pdq"]["hash"], first_photo["pdq"]["hash"]) <= 31  # PDQ alone: a copy
    assert again["moderation"] is None
    # Nor the swap of a frame in which, as in the swap, no face is found: the entry's
    # descriptor of its whole frame tells them apart.
    bare_swapped = await post_check(there, bob, bare_swap)
    assert bare_swapped["face_found"] is False
    assert distance(bare_swapped["pdq"]["hash"], bare["pdq"]["hash"]) <= 31
    assert bare_swapped["moderation"] is None
    # A lossless copy of either frame still gets the decision.
    for original in (frame, bare_frame):
        copy = await post_check(there, bob, COPIES["png"](original))
        assert copy["moderation"]["verdict"] == "real"
        assert copy["moderation"]["match"]["source"] == "team-a"


async def test_lists_without_face_descriptors_apply_only_to_faceless_images(client, auth, photos,
                                                                            other):
    """An older list (pdq, verdict, note, date) has no faces: its entries still work for images
    without a face, and never for an image with one, whose face cannot be compared."""
    alice, mod, admin = auth("alice"), auth("mo", "moderator"), auth("ad", "admin")
    picture = scene()
    await _decide_on(client, alice, mod, picture, "fake", "made-up map")
    await _decide_on(client, alice, mod, photos[0], "fake", "known face swap")
    rows = list(csv.DictReader(io.StringIO(await _export(client, admin))))
    old = "pdq,verdict,note,decided_at\n" + "".join(
        f"{r['pdq']},{r['verdict']},{r['note']},{r['decided_at']}\n" for r in rows)
    there, their_admin, bob = other
    resp = await _import(there, their_admin, old)
    assert await resp.json() == {"source": "team-a", "added": 2, "updated": 0}
    assert (await post_check(there, bob, COPIES["png"](picture)))["moderation"]["verdict"] \
        == "fake"
    assert (await post_check(there, bob, COPIES["png"](photos[0])))["moderation"] is None
    exported = list(csv.DictReader(io.StringIO(await _export(there, their_admin))))
    assert [(r["windows"], r["faces"]) for r in exported] == [("", "")] * 2


async def test_bad_lists_are_refused_whole_with_their_lines(client, auth):
    admin = auth("ad", "admin")
    good = "a" * 64
    face = "0.2000 0.1000 0.8000 0.9000 " + "80" * 64
    body = ("pdq,verdict,note,decided_at,windows,faces\n"
            f"{good},fake,ok,2026-01-02T03:04:05Z,,{face}\n"
            "xyz,fake,,,,\n"
            f"{good},maybe,,,,\n"
            f"{good},real,,yesterday,,\n"
            f"{good},real,,,{' '.join([good] * 8)},\n"
            f"{good},real,,,,0.2 0.1 0.8 0.9 80\n"
            f"{good},real,,,,0.8 0.1 0.2 0.9 {'80' * 64}\n"
            f"{good},real,,,,0.2 0.1 0.8 0.9 {'zz' * 64}\n"
            f"{good},real,,,,0.2 0.1 0.8 {'80' * 64}\n")
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data=body,
                             headers={**admin, "Content-Type": "text/csv"})
    assert resp.status == 400
    err = await resp.json()
    assert err["error"] == "bad_csv"
    assert [(x["line"], x["code"]) for x in err["lines"]] == [
        (3, "bad_pdq"), (4, "bad_verdict"), (5, "bad_date"), (6, "bad_windows"),
        (7, "bad_faces"), (8, "bad_faces"), (9, "bad_faces"), (10, "bad_faces")]
    assert all(x["error"] for x in err["lines"])
    exported = await (await client.get("/v1/admin/hashlist.csv", headers=admin)).text()
    assert exported.strip() == "pdq,verdict,note,decided_at,source,windows,faces"  # nothing
    # The good line alone is taken, its descriptor in canonical form.
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"},
                             data=body.split("\n", 2)[0] + "\n" + body.split("\n")[1] + "\n",
                             headers={**admin, "Content-Type": "text/csv"})
    assert resp.status == 201, await resp.text()
    exported = await (await client.get("/v1/admin/hashlist.csv", headers=admin)).text()
    assert list(csv.DictReader(io.StringIO(exported)))[0]["faces"] == face
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


async def test_a_hash_listed_with_both_verdicts_is_refused(client, auth):
    """The same pdq listed fake and then real answered added 1, updated 1: the later row won
    silently. Now the list is refused, the conflicting line named; a row repeated with the same
    verdict is still taken."""
    admin = {**auth("ad", "admin"), "Content-Type": "text/csv"}
    a, b = "a" * 64, "b" * 64
    body = ("pdq,verdict,note\n"
            f"{a},fake,first\n"
            f"{b},real,\n"
            f"{a.upper()},real,second\n"  # the same hash, in capitals
            f"{b},real,again\n")
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data=body,
                             headers=admin)
    assert resp.status == 400, await resp.text()
    err = await resp.json()
    assert err["error"] == "bad_csv"
    assert [(x["line"], x["code"]) for x in err["lines"]] == [(4, "conflicting_verdict")]
    assert "line 2" in err["lines"][0]["error"]
    exported = await (await client.get("/v1/admin/hashlist.csv", headers=admin)).text()
    assert exported.strip() == "pdq,verdict,note,decided_at,source,windows,faces"  # nothing
    same = "pdq,verdict\n" + f"{a},fake\n" * 2
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data=same,
                             headers=admin)
    assert resp.status == 201, await resp.text()
    rows = list(csv.DictReader(io.StringIO(
        await (await client.get("/v1/admin/hashlist.csv", headers=admin)).text())))
    assert [(r["pdq"], r["verdict"]) for r in rows] == [(a, "fake")]


async def test_only_admins_touch_hash_lists(client, auth):
    for role in ("user", "moderator"):
        h = auth("x", role)
        assert (await client.get("/v1/admin/hashlist.csv", headers=h)).status == 403
        resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data="pdq,verdict\n",
                                 headers={**h, "Content-Type": "text/csv"})
        assert resp.status == 403


async def test_dates_the_export_cannot_write_back_are_refused(client, auth):
    """A decided_at that parses as a number but is no date (inf, nan, 1e20) was imported, and
    every export after it answered 500."""
    admin = auth("ad", "admin")
    body = "pdq,verdict,decided_at\n" + "".join(
        f"{c * 64},fake,{when}\n" for c, when in zip("abcde", (
            "1e400", "nan", "-inf", "1e20", "0001-01-01T00:00:00+05:00")))
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data=body,
                             headers={**admin, "Content-Type": "text/csv"})
    assert resp.status == 400, await resp.text()
    err = await resp.json()
    assert [(x["line"], x["code"]) for x in err["lines"]] == [(n, "bad_date") for n in range(2, 7)]
    body = f"pdq,verdict,decided_at\n{'f' * 64},fake,253402300799\n"  # 9999-12-31T23:59:59Z
    resp = await client.post("/v1/admin/hashlist", params={"source": "t"}, data=body,
                             headers={**admin, "Content-Type": "text/csv"})
    assert resp.status == 201, await resp.text()
    resp = await client.get("/v1/admin/hashlist.csv", headers=admin)
    assert resp.status == 200, await resp.text()
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["pdq"], r["decided_at"]) for r in rows] == [("f" * 64, "9999-12-31T23:59:59+00:00")]
    # such a date stored before it was refused: the export writes no date instead of failing
    db = client.server.app[DB]
    await db.execute("UPDATE hash_list SET decided_at = ?", (1e20,))
    resp = await client.get("/v1/admin/hashlist.csv", headers=admin)
    assert resp.status == 200, await resp.text()
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["pdq"], r["decided_at"]) for r in rows] == [("f" * 64, "")]

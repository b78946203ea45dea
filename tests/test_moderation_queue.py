"""The flagged queue against the real app: flagging, reports, listing, items, decisions, overrides."""

import json

import cv2
import numpy as np
import pytest

from service.settings import REPO_ROOT
from tests.support.api import post_check as check
from tests.support.paths import require_shared_data, sample_images


@pytest.fixture
def faces() -> list[bytes]:
    require_shared_data()
    return [p.read_bytes() for p in sample_images(4, source="tpdne-unsplash")]




async def report(client, headers, check_id: str, **body) -> dict:
    resp = await client.post(f"/v1/checks/{check_id}/report", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def items(client, headers, **query) -> dict:
    resp = await client.get("/v1/moderation/items", params=query, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def item(client, headers, item_id: str) -> dict:
    resp = await client.get(f"/v1/moderation/items/{item_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def decide(client, headers, item_id: str, decision: str, version: int, note=None):
    return await client.post(f"/v1/moderation/items/{item_id}/decision", headers=headers,
                             json={"decision": decision, "version": version, "note": note})


async def test_fake_or_uncertain_checks_are_flagged_once_per_image(client, auth, faces):
    alice, bob, mod = auth("alice"), auth("bob"), auth("mo", "moderator")
    seen = {}
    for data in faces[:3]:
        a = await check(client, alice, data, "https://news.example/a")
        b = await check(client, bob, data, "https://blog.example/b")
        c = await check(client, alice, data, "https://news.example/a")
        assert a["verdict"] == b["verdict"] == c["verdict"]
        seen[a["sha256"]] = a["verdict"]
    listed = {it["sha256"]: it for it in (await items(client, mod, state="all"))["items"]}
    for sha, verdict in seen.items():
        if verdict in ("fake", "uncertain"):
            it = listed[sha]
            assert it["state"] == "open" and it["reason"] == "detectors"
            # one check per user and image: alice's repeat counts on her check, not as another
            assert (it["check_count"], it["user_count"], it["report_count"]) == (2, 2, 0)
            assert {p["url"]: p["count"] for p in it["pages"]} == {
                "https://news.example/a": 2, "https://blog.example/b": 1}
            assert it["detector_verdict"] == verdict
        else:
            assert sha not in listed
    assert len(listed) == sum(v != "real" for v in seen.values())


async def test_a_report_flags_the_image_with_its_reporters_pages_and_history(client, auth, faces):
    alice, bob, mod = auth("alice", email="alice@example.com"), auth("bob"), auth("mo", "moderator")
    a = await check(client, alice, faces[0], "https://news.example/story")
    b = await check(client, bob, faces[0])
    first = await report(client, alice, a["id"], note="this is my neighbour", page_url="https://news.example/story")
    assert first["status"] == "open" and first["flag_id"].startswith("flg_")
    again = await report(client, alice, a["id"], note="really, I know her")  # updates, not a new one
    assert again == first
    second = await report(client, bob, b["id"], page_url="https://forum.example/t/1")
    assert second["flag_id"] == first["flag_id"]

    it = await item(client, mod, first["flag_id"])
    assert (it["check_count"], it["user_count"], it["report_count"]) == (2, 2, 2)
    assert {(r["user_id"], r["email"], r["note"]) for r in it["reports"]} == {
        ("alice", "alice@example.com", "really, I know her"), ("bob", None, None)}
    assert {p["url"] for p in it["pages"]} == {"https://news.example/story", "https://forum.example/t/1"}
    assert [e["kind"] for e in it["history"]].count("reported") == 3
    assert it["sha256"] == a["sha256"] and it["state"] == "open" and it["version"] == 1
    # Only the check's owner can report it; others learn nothing about it.
    resp = await client.post(f"/v1/checks/{a['id']}/report", json={}, headers=bob)
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await client.post("/v1/checks/chk_nope/report", json={}, headers=bob)
    assert resp.status == 404
    resp = await client.post(f"/v1/checks/{a['id']}/report", json={"note": 5}, headers=alice)
    assert resp.status == 400 and (await resp.json())["error"] == "bad_field"


async def test_a_note_that_shows_nothing_is_no_note(client, auth, noise_png):
    """A note of a zero-width space was kept as a note that shows nothing; it is none, as a note
    of spaces is."""
    alice, mod = auth("alice"), auth("mo", "moderator")
    flag_id = (await report(client, alice, (await check(client, alice, noise_png))["id"],
                            note="\u200b \u00a0"))["flag_id"]
    assert [r["note"] for r in (await item(client, mod, flag_id))["reports"]] == [None]
    resp = await decide(client, mod, flag_id, "real", 1, note="\ufeff\u200b")
    assert resp.status == 200, await resp.text()
    assert (await item(client, mod, flag_id))["decision"]["note"] is None


async def test_list_filters_sorts_and_paginates(client, auth, faces):
    alice, mod = auth("alice"), auth("mo", "moderator")
    flag_ids = []
    for data in faces:
        c = await check(client, alice, data)
        flag_ids.append((await report(client, alice, c["id"]))["flag_id"])
    it = await item(client, mod, flag_ids[0])
    assert (await decide(client, mod, flag_ids[0], "dismissed", it["version"])).status == 200

    open_ = await items(client, mod)  # default: open, by score
    assert open_["total"] == 3 and {i["id"] for i in open_["items"]} == set(flag_ids[1:])
    assert open_["counts"] == {"open": 3, "confirmed_fake": 0, "real": 0, "dismissed": 1}
    scores = [-1 if i["score"] is None else i["score"] for i in open_["items"]]  # no face: None
    assert scores == sorted(scores, reverse=True)
    recent = await items(client, mod, sort="recent")
    assert [i["id"] for i in recent["items"]] == flag_ids[:0:-1]  # newest report first
    dismissed = await items(client, mod, state="dismissed")
    assert [i["id"] for i in dismissed["items"]] == [flag_ids[0]]
    assert dismissed["items"][0]["decision"]["decision"] == "dismissed"
    page2 = await items(client, mod, sort="recent", limit=1, offset=1)
    assert [i["id"] for i in page2["items"]] == [flag_ids[2]] and page2["total"] == 3
    assert (await items(client, mod, state="all"))["total"] == 4
    for bad in ({"state": "nope"}, {"sort": "size"}, {"limit": 0}, {"offset": -1}):
        resp = await client.get("/v1/moderation/items", params=bad, headers=mod)
        assert resp.status == 400 and (await resp.json())["error"] == "bad_query"


async def test_an_item_shows_image_heatmap_faces_and_each_detectors_score(client, auth, face_bytes):
    alice, mod = auth("alice"), auth("mo", "moderator")
    c = await check(client, alice, face_bytes)
    flag_id = (await report(client, alice, c["id"], note="wrong"))["flag_id"]
    it = await item(client, mod, flag_id)
    assert it["faces"] == c["faces"] and it["decisive_face"] == c["decisive_face"]
    members = json.loads((REPO_ROOT / "models" / "ensemble.json").read_text())["members"]
    assert set(it["models"]) == set(members)
    assert it["detectors"] == c["detectors"]  # the decisive face's figures, every detector's
    assert it["models"] == c["detectors"]["models"]
    assert it["image_url"] == f"/v1/moderation/items/{flag_id}/image.jpg"

    resp = await client.get(it["image_url"], headers=mod)
    assert resp.status == 200 and resp.content_type == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and min(image.shape[:2]) > 32
    resp = await client.get(it["heatmap_url"], headers=mod)
    assert resp.status == 200 and resp.content_type == "image/png"
    heat = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_COLOR)
    assert heat.shape == image.shape
    for path in ("/v1/moderation/items/flg_nope", "/v1/moderation/items/flg_nope/image.jpg",
                 "/v1/moderation/items/flg_nope/heatmap.png"):
        resp = await client.get(path, headers=mod)
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"


async def test_a_decision_overrides_the_detectors_for_that_image_from_then_on(client, auth, faces):
    alice, carol = auth("alice"), auth("carol")
    mod = auth("mo", "moderator", email="mo@moderators.example")
    before = await check(client, alice, faces[0])
    other = await check(client, alice, faces[1])
    flag_id = (await report(client, alice, before["id"]))["flag_id"]

    resp = await decide(client, mod, flag_id, "fake", 1, note="known generated portrait")
    assert resp.status == 200, await resp.text()
    decided = await resp.json()
    assert decided["state"] == "confirmed_fake" and decided["version"] == 2
    assert decided["decision"]["decision"] == "fake" and decided["decision"]["by"] == "mo"

    after = await check(client, carol, faces[0])
    assert after["verdict"] == "fake" and after["label"] == "FAKE" and after["confidence"] == 100.0
    assert after["decided_by"] == "moderator" and after["score"] is None, "no detector said this"
    assert after["moderation"]["verdict"] == "fake" and after["moderation"]["item_id"] == flag_id
    assert after["moderation"]["note"] == "known generated portrait"
    assert after["moderation"]["decided_by"] == "moderator"
    assert "moderator" in after["note"]
    assert after["detectors"] == before["detectors"]  # what the detectors said is still there
    assert "mo@moderators.example" not in await (await client.get(
        f"/v1/checks/{after['id']}", headers=carol)).text()  # moderators stay anonymous to users
    resp = await client.get("/v1/checks", params={"sha256": before["sha256"]}, headers=carol)
    assert (await resp.json())["moderation"]["verdict"] == "fake"
    assert (await check(client, carol, faces[1]))["moderation"] is None  # other images untouched
    assert other["moderation"] is None

    resp = await decide(client, mod, flag_id, "real", 2, note="verified with the photographer")
    assert resp.status == 200
    again = await check(client, carol, faces[0])
    assert again["verdict"] == "real" and again["label"] == "REAL"
    assert again["moderation"]["verdict"] == "real"

    resp = await decide(client, mod, flag_id, "dismissed", 3)
    assert resp.status == 200 and (await resp.json())["state"] == "dismissed"
    last = await check(client, carol, faces[0])
    assert last["moderation"] is None and last["verdict"] == before["verdict"]
    kinds = [e["kind"] for e in (await item(client, mod, flag_id))["history"]]
    assert kinds[-4:] == ["reported", "decided", "decided", "decided"]
    assert kinds[:-4] == (["flagged"] if before["verdict"] != "real" else [])


async def test_decisions_are_validated(client, auth, face_bytes):
    alice, mod = auth("alice"), auth("mo", "moderator")
    flag_id = (await report(client, alice, (await check(client, alice, face_bytes))["id"]))["flag_id"]
    cases = [({"decision": "maybe", "version": 1}, 400, "bad_decision"),
             ({"decision": "fake"}, 400, "missing_version"),
             ({"decision": "fake", "version": "1"}, 400, "missing_version"),
             ({"decision": "fake", "version": 1, "note": "x" * 2001}, 400, "bad_field"),
             ({"decision": "fake", "version": 7}, 409, "conflict"),
             # past 32 bits: 409 on both backends (PostgreSQL answered 400 bad_value)
             ({"decision": "fake", "version": 2**40}, 409, "conflict"),
             ({"decision": "fake", "version": -2**40}, 409, "conflict")]
    for body, status, code in cases:
        resp = await client.post(f"/v1/moderation/items/{flag_id}/decision", json=body, headers=mod)
        assert resp.status == status, (body, await resp.text())
        assert (await resp.json())["error"] == code
    resp = await decide(client, mod, "flg_nope", "fake", 1)
    assert resp.status == 404
    resp = await client.post(f"/v1/moderation/items/{flag_id}/decision", data="fake", headers=mod)
    assert resp.status == 415
    assert (await item(client, mod, flag_id))["state"] == "open"


async def test_a_new_report_reopens_a_decided_item_and_the_decision_holds_meanwhile(
        client, auth, face_bytes):
    alice, bob, mod = auth("alice"), auth("bob"), auth("mo", "moderator")
    a = await check(client, alice, face_bytes)
    flag_id = (await report(client, alice, a["id"]))["flag_id"]
    assert (await decide(client, mod, flag_id, "real", 1)).status == 200
    b = await check(client, bob, face_bytes)
    assert b["verdict"] == "real"
    reopened = await report(client, bob, b["id"], note="no, look at the ears")
    assert reopened == {"flag_id": flag_id, "status": "open"}
    it = await item(client, mod, flag_id)
    assert it["state"] == "open" and it["version"] == 3 and it["decision"]["decision"] == "real"
    assert it["history"][-1]["kind"] == "reopened"
    assert (await check(client, bob, face_bytes))["verdict"] == "real"  # until decided again
    # The same reporter again, with no decision in between, does not bump the version.
    await report(client, bob, b["id"], note="please")
    assert (await item(client, mod, flag_id))["version"] == 3
    # A moderator who loaded the item before it was reopened cannot decide blind.
    resp = await decide(client, mod, flag_id, "dismissed", 2)
    assert resp.status == 409
    body = await resp.json()
    assert body["current"]["version"] == 3 and body["current"]["state"] == "open"

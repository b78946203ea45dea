"""POST /v1/checks and the routes that read checks back, against the real app and models."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import time
from collections.abc import Callable

import aiohttp
import cv2
import numpy as np
import pytest

from service.keys import CHECKS
from service.settings import REPO_ROOT
from tests.conftest import encode
from tests.support.paths import require_shared_data, sample_images

ENSEMBLE = json.loads((REPO_ROOT / "models" / "ensemble.json").read_text())
MEMBERS = ENSEMBLE["members"]
CARDS = {m: json.loads((REPO_ROOT / "models" / f"{m}.card.json").read_text()) for m in MEMBERS}
#: What the model cards say; the untrained placeholders and the trained models both pass.
TRAINED = bool(ENSEMBLE.get("trained", True)) and all(
    bool(c.get("trained")) and bool(c.get("metrics")) for c in CARDS.values())
THRESHOLD = float(ENSEMBLE["threshold"])
BAND = tuple(float(v) for v in ENSEMBLE["uncertain_band"])


def gif_bytes(frames: list[np.ndarray]) -> bytes:
    """A minimal animated GIF89a of greyscale frames (OpenCV cannot be relied on to write GIF).

    256-grey palette; LZW with 9-bit literal codes only, a clear code every 250 pixels so the
    code table never grows past 9 bits: valid for every decoder, just not compressed.
    """
    h, w = frames[0].shape
    palette = bytes(v for g in range(256) for v in (g, g, g))
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette)
    out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop: an animation
    for frame in frames:
        out += b"!\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s per frame
        out += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08"
        pixels = frame.astype(np.uint8).ravel().tolist()
        codes = []
        for i in range(0, len(pixels), 250):
            codes += [256, *pixels[i:i + 250]]
        codes.append(257)
        acc = nbits = 0
        data = bytearray()
        for c in codes:
            acc |= c << nbits
            nbits += 9
            while nbits >= 8:
                data.append(acc & 0xFF)
                acc >>= 8
                nbits -= 8
        if nbits:
            data.append(acc)
        for i in range(0, len(data), 255):
            out += bytes([len(data[i:i + 255])]) + data[i:i + 255]
        out += b"\x00"
    return bytes(out + b";")


def face_image(n: int = 0, label: str = "real") -> np.ndarray:
    require_shared_data()
    return cv2.imread(str(sample_images(n + 1, source="tpdne-unsplash", label=label)[n]))


def group_photo() -> np.ndarray:
    """Three faces side by side (900x300)."""
    require_shared_data()
    return np.hstack([cv2.imread(str(p)) for p in sample_images(3, source="tpdne-unsplash",
                                                                  label="fake")])


def formats() -> dict[str, tuple[str, Callable[[np.ndarray], bytes]]]:
    return {
        "jpeg": ("image/jpeg", lambda im: encode(im, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92])),
        "png": ("image/png", lambda im: encode(im, ".png")),
        "webp": ("image/webp", lambda im: encode(im, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 95])),
        "bmp": ("image/bmp", lambda im: encode(im, ".bmp")),
        "gif": ("image/gif", lambda im: gif_bytes([cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)])),
    }


async def post_image(client, headers, data: bytes, content_type: str = "image/jpeg",
                     path: str = "/v1/checks", **fields) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("image", data, filename="upload", content_type=content_type)
    for k, v in fields.items():
        form.add_field(k, v)
    return await client.post(path, data=form, headers=headers)


async def check_ok(resp) -> dict:
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def batching(client) -> dict:
    return (await (await client.get("/health")).json())["batching"]


def rounds(body: dict) -> int:
    """Model runs one check takes: every face's first view, then all views of the faces near a
    verdict boundary (the view cascade; ``views`` per face says which)."""
    return 1 + any(f["views"] > 1 for f in body["faces"])


def assert_verdict_consistent(obj: dict) -> None:
    """label/verdict/confidence follow from the score the way the ensemble card says."""
    p = obj["score"]
    if obj.get("too_small"):
        assert obj["verdict"] == "uncertain" and "too small" in obj["note"]
        return
    if obj.get("cut_off"):
        assert obj["verdict"] == "uncertain" and "edge" in obj["note"]
        return
    assert 0.0 <= p <= 1.0
    assert obj["label"] == ("FAKE" if p >= THRESHOLD else "REAL")
    expected = "uncertain" if BAND[0] <= p < BAND[1] else obj["label"].lower()
    assert obj["verdict"] == expected
    assert 50.0 <= obj["confidence"] <= 100.0


async def test_every_format_is_checked(client, auth):
    for fmt, (content_type, make) in formats().items():
        data = make(face_image())
        body = await check_ok(await post_image(client, auth(), data, content_type))
        assert body["sha256"] == hashlib.sha256(data).hexdigest(), fmt
        assert (body["width"], body["height"]) == (300, 300), fmt
        assert body["face_found"] is True and len(body["faces"]) == 1, fmt
        assert body["cached"] is False, fmt
        assert_verdict_consistent(body)


async def test_gif_is_read_from_its_first_frame(client, auth):
    grey = cv2.cvtColor(face_image(), cv2.COLOR_BGR2GRAY)
    blank = np.full_like(grey, 128)
    face_first = await check_ok(await post_image(client, auth(), gif_bytes([grey, blank]), "image/gif"))
    blank_first = await check_ok(await post_image(client, auth(), gif_bytes([blank, grey]), "image/gif"))
    assert face_first["face_found"] is True
    assert blank_first["face_found"] is False


async def test_answer_carries_every_field(client, auth, face_bytes):
    before = time.time()
    body = await check_ok(await post_image(client, auth(), face_bytes,
                                           page_url="https://news.example/a", source_url="https://cdn.example/f.jpg"))
    assert body["id"].startswith("chk_")
    assert body["sha256"] == hashlib.sha256(face_bytes).hexdigest()
    assert_verdict_consistent(body)
    assert body["face_found"] is True and body["cached"] is False
    assert body["moderation"] is None
    det = body["detectors"]
    assert body["decided_by"] == "detectors"
    assert {k: det[k] for k in ("verdict", "label", "score", "confidence")} == {
        k: body[k] for k in ("verdict", "label", "score", "confidence")}
    assert det["decisive_face"] == body["decisive_face"] == 0
    assert body["heatmap_url"] == f"/v1/checks/{body['id']}/heatmap.png"
    assert body["elapsed_ms"] >= 0 and before - 1 <= body["created_at"] <= time.time() + 1
    assert body["page_url"] == "https://news.example/a"
    assert body["source_url"] == "https://cdn.example/f.jpg"
    assert "models" not in body, "each detector's score lives in detectors.models"
    assert set(det["models"]) == set(MEMBERS)
    for name, m in det["models"].items():
        assert m["score"] == body["faces"][0]["models"][name]
        assert m["trained"] is (bool(CARDS[name].get("trained")) and bool(CARDS[name].get("metrics")))
    assert body["trained"] is TRAINED
    assert ("warning" in body) is (not TRAINED)
    (face,) = body["faces"]
    assert body["decisive_face"] == 0 and face["score"] == body["score"]
    x, y, w, h = face["box"]
    assert 0 <= x < x + w <= 300 and 0 <= y < y + h <= 300 and w >= 50
    # the aligned square: its corners (turned with the head) and their bounds in the image
    quad = np.array(face["quad"])
    assert quad.shape == (4, 2)
    cx, cy = quad.mean(0)
    assert x < cx < x + w and y < cy < y + h
    x0, y0, x1, y1 = face["region"]
    assert (x0, y0) == tuple(np.clip(np.floor(quad.min(0)), 0, 300).astype(int))
    assert x0 < x1 <= 300 and y0 < y1 <= 300
    assert face["too_small"] is False and face["cut_off"] is False
    assert set(face["models"]) == set(MEMBERS)
    assert_verdict_consistent(face)


async def test_raw_image_bytes(client, auth, face_bytes):
    headers = {**auth(), "Content-Type": "image/jpeg"}
    resp = await client.post("/v1/checks?page_url=https://news.example/b", data=face_bytes,
                             headers=headers)
    body = await check_ok(resp)
    assert body["sha256"] == hashlib.sha256(face_bytes).hexdigest()
    assert body["face_found"] is True and body["page_url"] == "https://news.example/b"
    octet = await client.post("/v1/checks", data=face_bytes,
                              headers={**auth(), "Content-Type": "application/octet-stream"})
    assert (await check_ok(octet))["cached"] is True


async def test_group_photo_has_a_box_per_face(client, auth):
    data = encode(group_photo(), ".jpg")
    body = await check_ok(await post_image(client, auth(), data))
    faces = body["faces"]
    assert body["face_found"] is True and len(faces) >= 2
    thirds = sorted({(f["box"][0] + f["box"][2] // 2) // 300 for f in faces})
    assert len(thirds) == len(faces), "each face box lies on a different photo"
    for f in faces:
        x, y, w, h = f["box"]
        assert 0 <= x and x + w <= 900 and 0 <= y and y + h <= 300
        assert_verdict_consistent(f)
    worst = max(range(len(faces)), key=lambda i: faces[i]["score"])
    assert body["decisive_face"] == worst and body["score"] == faces[worst]["score"]
    for name in MEMBERS:  # every figure in detectors is the decisive face's
        assert body["detectors"]["models"][name]["score"] == faces[worst]["models"][name]


async def test_no_face_is_not_judged(client, auth, noise_png):
    body = await check_ok(await post_image(client, auth(), noise_png, "image/png"))
    assert body["face_found"] is False and body["faces"] == []
    assert body["verdict"] == "no_face"
    assert body["score"] is None and body["label"] is None and body["confidence"] is None
    assert body["decisive_face"] is None
    assert body["note"] == "no face found: not judged"
    assert body["detectors"]["verdict"] == "no_face" and body["detectors"]["models"] == {}
    resp = await post_image(client, auth(), noise_png, "image/png", path="/predict")
    assert await resp.json() == {"result": "NO_FACE", "confidence": None}
    heat = await client.get(body["heatmap_url"], headers=auth())
    assert heat.status == 200 and heat.content_type == "image/png"


async def test_black_and_white_pictures_carry_a_warning(client, auth):
    """Every black-and-white picture the detectors learned from is real, and they catch far
    fewer fakes without colour (docs/models.md, photo edits): such a picture's answer says so,
    whatever its verdict. A colour picture, and a grey one without a face, carry no warning."""
    colour = face_image(0, "fake")
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    plain = await check_ok(await post_image(client, auth(), encode(colour, ".jpg")))
    assert "warning" not in plain or "black-and-white" not in plain["warning"]
    for data in (encode(grey, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 60]),
                 encode(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), ".png")):  # one channel
        body = await check_ok(await post_image(client, auth(), data))
        assert body["face_found"] is True
        assert "black-and-white picture" in body["warning"], body.get("warning")
        again = await client.get(f"/v1/checks/{body['id']}", headers=auth())
        assert "black-and-white picture" in (await again.json())["warning"]
    rng = np.random.default_rng(1)
    faceless = await check_ok(await post_image(
        client, auth(), encode(np.repeat(rng.integers(0, 255, (120, 160, 1), np.uint8), 3, 2))))
    assert faceless["verdict"] == "no_face" and "warning" not in faceless


async def test_a_cup_of_coffee_is_not_a_face_and_an_astronaut_is_not_fake(client, auth):
    """Public photographs outside the training data (scikit-image's samples): the cup, which the
    face finder's first pass took for a face (and the detectors then called REAL), is not
    judged; the astronaut's face is found and not called fake."""
    from model_export import sample_photos

    coffee = sample_photos.images({"coffee.png": sample_photos.WITHOUT_FACES["coffee.png"]})
    body = await check_ok(await post_image(client, auth(), coffee["coffee.png"], "image/png"))
    assert body["verdict"] == "no_face" and body["faces"] == []
    astronaut = sample_photos.images(
        {"astronaut.png": sample_photos.WITH_FACES["astronaut.png"]})["astronaut.png"]
    body = await check_ok(await post_image(client, auth(), astronaut, "image/png"))
    assert body["face_found"] and body["verdict"] in ("real", "uncertain")


async def test_a_face_too_small_to_judge_is_uncertain(client, auth):
    """A face shrunk below the card's min_face pixels is found and shown, but not judged."""
    img = face_image()
    small = cv2.resize(img, (40, 40), interpolation=cv2.INTER_AREA)
    canvas = np.full((200, 200, 3), 200, np.uint8)
    canvas[80:120, 80:120] = small
    body = await check_ok(await post_image(client, auth(), encode(canvas), "image/png"))
    if not body["faces"]:
        pytest.skip("the face finder does not see a face this small")
    face = body["faces"][0]
    assert face["too_small"] is True and face["verdict"] == "uncertain"
    assert "too small" in face["note"]
    assert body["verdict"] == "uncertain" and body["note"] == "every face is too small to judge"


async def test_a_face_running_off_the_pictures_edge_is_not_judged(client, auth):
    """Cropped through the face, a picture's face is judged while at most the card's
    ``edge.max_outside`` of its aligned square lies outside the picture, and answered UNSURE
    (``cut_off``, with a note) beyond: the part outside is the edge repeated."""
    from service.detection.detector import CUT_OFF_NOTE
    from service.detection.preprocess import outside_share

    limit = ENSEMBLE.get("edge", {}).get("max_outside")
    assert limit is not None and 0.0 < limit < 0.5, "the shipped ensemble has an edge rule"
    img = cv2.copyMakeBorder(face_image(2), 60, 60, 60, 60, cv2.BORDER_REFLECT)
    body = await check_ok(await post_image(client, auth(), encode(img, ".png"), "image/png"))
    face = body["faces"][0]
    assert face["cut_off"] is False and outside_share(np.array(face["quad"]), *img.shape[1::-1]) == 0
    seen = set()
    for share in (0.05, 0.45):
        x0, x1 = min(x for x, _ in face["quad"]), max(x for x, _ in face["quad"])
        cut = np.ascontiguousarray(img[:, int(x0 + share * (x1 - x0)):])
        got = await check_ok(await post_image(client, auth(), encode(cut, ".png"), "image/png"))
        assert len(got["faces"]) == 1, f"the cut face is still found ({share})"
        f = got["faces"][0]
        outside = outside_share(np.array(f["quad"]), cut.shape[1], cut.shape[0])
        assert f["cut_off"] is (outside > limit), (share, outside, f)
        seen.add(f["cut_off"])
        if f["cut_off"]:
            assert f["verdict"] == "uncertain" and f["note"] == CUT_OFF_NOTE
            assert got["verdict"] == "uncertain" and "edge" in got["note"]
        else:
            assert f.get("note") != CUT_OFF_NOTE
    assert seen == {False, True}, "a light cut is judged and a heavy one is not"


def test_the_share_page_says_a_face_runs_off_the_edge():
    from service.detection.detector import CUT_OFF_NOTE
    from service.handlers.shares import _faces_rows

    rows = _faces_rows({"decisive_face": 0, "faces": [
        {"verdict": "uncertain", "cut_off": True, "confirmed": False, "note": CUT_OFF_NOTE,
         "score": 0.93, "models": {}},
        {"verdict": "real", "cut_off": False, "score": 0.1, "models": {}}]})
    assert rows.count("runs off the picture's edge: not judged") == 1
    assert "not every detector finds it fake" not in rows


async def test_second_upload_is_answered_from_the_store(client, auth, face_bytes):
    first = await check_ok(await post_image(client, auth("alice"), face_bytes))
    counters = await batching(client)
    assert counters["batches_run"] == rounds(first)
    second = await check_ok(await post_image(client, auth("bob"), face_bytes))
    assert second["cached"] is True and second["id"] != first["id"]
    assert second["score"] == first["score"] and second["faces"] == first["faces"]
    assert await batching(client) == counters, "the models ran again for a known image"


async def test_concurrent_identical_uploads_are_scored_once(client, auth, fake_face_bytes):
    bodies = await asyncio.gather(*[post_and_read(client, auth(f"user{i}"), fake_face_bytes)
                                    for i in range(6)])
    counters = await batching(client)
    assert counters["batches_run"] == rounds(bodies[0])
    assert [b["cached"] for b in bodies].count(False) == 1
    assert len({b["score"] for b in bodies}) == 1 and len({b["id"] for b in bodies}) == 6


async def post_and_read(client, headers, data):
    return await check_ok(await post_image(client, headers, data))


async def test_stored_check_is_for_its_owner(client, auth, face_bytes):
    made = await check_ok(await post_image(client, auth("alice"), face_bytes))
    resp = await client.get(f"/v1/checks/{made['id']}", headers=auth("alice"))
    assert resp.status == 200
    stored = await resp.json()
    assert "user_id" not in stored
    for key in ("id", "sha256", "verdict", "score", "label", "confidence", "faces", "detectors"):
        assert stored[key] == made[key]
    other = await client.get(f"/v1/checks/{made['id']}", headers=auth("mallory"))
    assert other.status == 404 and (await other.json())["error"] == "not_found"
    mod = await client.get(f"/v1/checks/{made['id']}", headers=auth("maria", "moderator"))
    assert mod.status == 200
    missing = await client.get("/v1/checks/chk_nope", headers=auth("alice"))
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    assert (await client.get(f"/v1/checks/{made['id']}")).status == 401


async def test_list_is_the_callers_own_newest_first(client, auth, face_bytes, noise_png):
    a = await check_ok(await post_image(client, auth("alice"), face_bytes))
    b = await check_ok(await post_image(client, auth("alice"), noise_png, "image/png"))
    await check_ok(await post_image(client, auth("bob"), face_bytes))
    body = await (await client.get("/v1/checks", headers=auth("alice"))).json()
    assert [c["id"] for c in body["items"]] == [b["id"], a["id"]]
    page = await (await client.get("/v1/checks?limit=1", headers=auth("alice"))).json()
    assert [c["id"] for c in page["items"]] == [b["id"]]
    rest = await (await client.get(f"/v1/checks?limit=1&before={page['next_before']}",
                                   headers=auth("alice"))).json()
    assert [c["id"] for c in rest["items"]] == [a["id"]]
    bad = await client.get("/v1/checks?limit=0", headers=auth("alice"))
    assert bad.status == 400 and (await bad.json())["error"] == "bad_query"


async def test_lookup_by_sha256(client, auth, face_bytes):
    sha = hashlib.sha256(face_bytes).hexdigest()
    miss = await client.get(f"/v1/checks?sha256={sha}", headers=auth("bob"))
    assert miss.status == 404 and (await miss.json())["error"] == "not_found"
    made = await check_ok(await post_image(client, auth("alice"), face_bytes))
    counters = await batching(client)
    hit = await client.get(f"/v1/checks?sha256={sha.upper()}&page_url=https://x.example/",
                           headers=auth("bob"))
    assert hit.status == 200
    found = await hit.json()
    assert found["cached"] is True and found["sha256"] == sha and found["id"] != made["id"]
    assert found["score"] == made["score"] and found["page_url"] == "https://x.example/"
    assert await batching(client) == counters
    mine = await (await client.get("/v1/checks", headers=auth("bob"))).json()
    assert [c["id"] for c in mine["items"]] == [found["id"]], "the lookup is recorded for bob"
    for bad in ("abc", "g" * 64, sha + "0"):
        resp = await client.get(f"/v1/checks?sha256={bad}", headers=auth("bob"))
        assert resp.status == 400 and (await resp.json())["error"] == "bad_sha256"


@pytest.mark.parametrize("size,thumb", [((300, 300), (300, 300)), ((1280, 720), (640, 360))])
async def test_heatmap_is_a_png_of_the_thumbnail(client, auth, size, thumb):
    image = cv2.resize(face_image(), size, interpolation=cv2.INTER_LINEAR)
    made = await check_ok(await post_image(client, auth("alice"), encode(image, ".jpg")))
    resp = await client.get(made["heatmap_url"], headers=auth("alice"))
    assert resp.status == 200 and resp.content_type == "image/png"
    png = await resp.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    heat = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert (heat.shape[1], heat.shape[0]) == thumb
    assert heat.std() > 5, "an image, not a blank"
    other = await client.get(made["heatmap_url"], headers=auth("mallory"))
    assert other.status == 404


async def test_heatmap_of_a_faceless_image(client, auth, noise_png):
    made = await check_ok(await post_image(client, auth(), noise_png, "image/png"))
    resp = await client.get(made["heatmap_url"], headers=auth())
    heat = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_COLOR)
    assert (heat.shape[1], heat.shape[0]) == (160, 120)


async def test_predict_has_the_seed_shape(client, auth, face_bytes):
    resp = await post_image(client, auth(), face_bytes, path="/predict")
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"result", "confidence"}
    assert body["result"] in ("REAL", "FAKE") and 0.0 <= body["confidence"] <= 100.0
    check = await (await client.get(f"/v1/checks?sha256={hashlib.sha256(face_bytes).hexdigest()}",
                                    headers=auth())).json()
    assert (check["label"], check["confidence"]) == (body["result"], body["confidence"])


async def test_a_caller_going_away_does_not_fail_the_others(client, face_bytes, monkeypatch):
    """Two requests share one scoring; the first is cancelled mid-way: the second is answered."""
    checks = client.app[CHECKS]
    real_analyze = checks.detector.analyze
    entered, release = asyncio.Event(), asyncio.Event()

    async def gated_analyze(data, **kw):  # the real scoring, held until the test lets it go
        entered.set()
        await release.wait()
        return await real_analyze(data, **kw)

    monkeypatch.setattr(checks.detector, "analyze", gated_analyze)
    first = asyncio.ensure_future(checks.check(face_bytes, "alice"))
    await asyncio.wait_for(entered.wait(), 30)  # the first is scoring
    second = asyncio.ensure_future(checks.check(face_bytes, "bob"))
    await asyncio.sleep(0.05)  # the second waits for the first's scoring
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    shared = await asyncio.wait_for(second, 30)
    assert shared["cached"] is True and shared["sha256"] == hashlib.sha256(face_bytes).hexdigest()
    assert first.cancelled()
    assert await checks.scored(shared["sha256"]) is not None, "the scoring finished and was stored"
    assert (await batching(client))["batches_run"] == rounds(shared)


async def test_a_check_that_cannot_be_stored_fails_alone(client, face_bytes, monkeypatch):
    """The image is stored with the check of the request that scored it, in one transaction. If
    that check cannot be stored, the image still is, the requests sharing the scoring get theirs,
    and the failing request gets its error."""
    checks = client.app[CHECKS]
    real_after = checks.after_check

    async def refusing(tx, check, user_id, *extra):  # as a constraint of the store would
        if user_id == "mallory":
            raise RuntimeError("this check cannot be stored")
        return await real_after(tx, check, user_id, *extra)

    monkeypatch.setattr(checks, "after_check", refusing)
    first = asyncio.ensure_future(checks.check(face_bytes, "mallory"))
    second = asyncio.ensure_future(checks.check(face_bytes, "bob"))
    failed, shared = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(failed, RuntimeError), failed
    assert shared["cached"] is True
    assert (await batching(client))["batches_run"] == rounds(shared)
    sha256 = hashlib.sha256(face_bytes).hexdigest()
    assert await checks.scored(sha256) is not None, "the image was stored"
    users = await checks.db.fetchall("SELECT user_id FROM checks WHERE sha256 = ?", (sha256,))
    assert [r["user_id"] for r in users] == ["bob"]
    again = await checks.check(face_bytes, "alice")
    assert again["cached"] is True and again["verdict"] == shared["verdict"]

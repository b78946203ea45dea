"""The agreement rule (`model_export.agree`): a face is called FAKE only where the mobilenet
member on its own finds it fake too.

On the shipped files and real and fake photographs from ``../shared/data``: a threshold no face
reaches turns every FAKE into UNSURE with the note and changes nothing else; a threshold every
face reaches answers as the ensemble without the rule; the shipped rule holds back exactly the
FAKE faces whose mobilenet score is under its threshold. Also the video track rule, the share
page and what `agree` measures.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_export import agree
from service.detection.detector import UNCONFIRMED_NOTE, UNFAMILIAR_NOTE
from service.detection.models import ModelsError, load_ensemble
from service.video.combine import combine_track
from tests.support.paths import require_shared_data, sample_images
from tests.test_gate import MODELS, _answers, _models_with


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    require_shared_data()
    return [p.read_bytes() for s in ("gan-faces-extra", "sdfd-sd21", "tpdne-unsplash",
                                     "celebrity-press", "dfdc-faces")
            for p in sample_images(6, source=s)]


def _no_gate(value):
    def change(card):
        card.pop("gate", None)
        if value is None:
            card.pop("agreement", None)
        else:
            card["agreement"] = {**card.get("agreement", {}), "member": "mobilenet",
                                 "threshold": value}
    return change


async def test_only_faces_the_member_confirms_are_called_fake(tmp_path, photos):
    held = await _answers(_models_with(tmp_path / "a", _no_gate(0.999999)), photos)
    open_ = await _answers(_models_with(tmp_path / "b", _no_gate(1e-6)), photos)
    bare = await _answers(_models_with(tmp_path / "c", _no_gate(None)), photos)
    fakes = 0
    for h, o, b in zip(held, open_, bare):
        assert [f["score"] for f in h["faces"]] == [f["score"] for f in b["faces"]]
        assert [f["verdict"] for f in o["faces"]] == [f["verdict"] for f in b["faces"]]
        assert all(f["confirmed"] is True for f in o["faces"])
        assert "confirmed" not in json.dumps(b["faces"])
        assert o["verdict"] == b["verdict"]
        for fh, fb in zip(h["faces"], b["faces"]):
            assert fh["confirmed"] is False
            if fb["verdict"] == "fake":
                fakes += 1
                assert fh["verdict"] == "uncertain" and fh["note"] == UNCONFIRMED_NOTE
            else:
                assert fh["verdict"] == fb["verdict"]
        assert h["verdict"] != "fake"
        if b["verdict"] == "fake":
            assert h["verdict"] == "uncertain" and h["note"] == UNCONFIRMED_NOTE
    assert fakes >= 3, "the sample holds faces the ensemble calls FAKE"


async def test_the_shipped_rule_holds_back_what_its_member_does_not_confirm(photos):
    ens = json.loads((MODELS / "ensemble.json").read_text())
    if "agreement" not in ens:
        pytest.skip("the shipped ensemble has no agreement rule")
    t = ens["agreement"]["threshold"]
    assert t == json.loads((MODELS / "mobilenet.card.json").read_text())["threshold"]
    for a in await _answers(MODELS, photos):
        for f in a["faces"]:
            if f["too_small"] or f.get("unfamiliar"):
                continue
            own = f["models"]["mobilenet"]  # rounded to 4 places, as the answer shows it
            assert f["confirmed"] is (own >= t) or abs(own - t) < 1e-4
            if f["score"] >= ens["threshold"]:
                assert (f["verdict"] == "fake") is f["confirmed"]
                if not f["confirmed"]:
                    assert f["note"] == UNCONFIRMED_NOTE


def test_a_rule_the_ensemble_cannot_serve_is_refused(tmp_path):
    with pytest.raises(ModelsError, match="not a member"):
        load_ensemble(_models_with(tmp_path / "a", lambda c: c.update(
            agreement={"member": "x", "threshold": 0.5})), "cpu", 1)
    with pytest.raises(ModelsError, match="not a probability"):
        load_ensemble(_models_with(tmp_path / "b", lambda c: c.update(
            agreement={"member": "mobilenet", "threshold": 1.5})), "cpu", 1)
    first = json.loads((MODELS / "ensemble.json").read_text())["cascade"]["first_members"]
    other = next(m for m in ("vgg16", "resnet") if m not in first)
    with pytest.raises(ModelsError, match="first stage"):
        load_ensemble(_models_with(tmp_path / "c", lambda c: c.update(
            agreement={"member": other, "threshold": 0.5})), "cpu", 1)


def test_a_track_most_of_whose_frames_are_unconfirmed_is_not_fake():
    rules = dict(threshold=0.8, band=(0.2, 0.8), trim=0.0, min_frames=3, max_disagreement=0.5)
    scores = [0.95, 0.9, 0.93, 0.97]
    assert combine_track(scores, **rules)["verdict"] == "fake"
    assert combine_track(scores, **rules, confirmed=[True, False, True, None])["verdict"] == "fake"
    out = combine_track(scores, **rules, confirmed=[False, False, True, False])
    assert out["verdict"] == "uncertain" and "holds best on unseen photos" in out["note"]
    real = combine_track([0.1, 0.05, 0.1], **rules, confirmed=[False] * 3)
    assert real["verdict"] == "real" and real["note"] is None


def test_the_share_page_says_why_an_unconfirmed_face_is_not_fake():
    from service.handlers.shares import _faces_rows

    rows = _faces_rows({"decisive_face": 0, "faces": [
        {"verdict": "uncertain", "confirmed": False, "note": UNCONFIRMED_NOTE, "score": 0.93,
         "models": {}},
        {"verdict": "uncertain", "confirmed": False, "score": 0.5, "models": {}},
        {"verdict": "uncertain", "unfamiliar": True, "note": UNFAMILIAR_NOTE, "score": 0.9,
         "models": {}}]})
    assert rows.count("does not confirm it") == 1
    assert rows.count("unlike the faces the detectors learned from") == 1


def test_the_measured_figures_count_what_the_rule_holds_back():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.1])
    confirmed = np.array([False, True, True, True, False, True])
    s = np.array(["a", "b", "a", "c", "c", "c"])
    f = agree.figures(y, p, s, 0.5, confirmed, unfamiliar=np.array([0, 1, 0, 0, 0, 0], bool))
    assert f["without_rule"] == {"reals_called_fake": 2 / 3, "fakes_caught": 2 / 3}
    assert f["with_rule"] == {"reals_called_fake": 1 / 3, "fakes_caught": 1 / 3}
    assert f["served"] == {"reals_called_fake": 0.0, "fakes_caught": 1 / 3}
    assert f["per_source"]["a"] == {"reals_called_fake": [0.5, 0.0]}
    assert f["faces_unconfirmed"] == pytest.approx(2 / 6)


def test_the_member_logit_is_the_one_the_cascade_served():
    """Far from every boundary the cascade stops at the first view, and so does the rule's
    logit; near one, every view is scored and the rule reads the mean over views."""
    names = ["resnet", "mobilenet"]
    views = np.array([[3.0, 1.0, 2.0], [-0.1, 0.5, 0.3]])  # (faces, views), each member alike
    sc = {n: {"test_views": views, "test": views.mean(-1)} for n in names}
    ens = {"threshold": 0.5, "uncertain_band": [0.4, 0.5],
           "combine": {"weights": {"resnet": 0.0, "mobilenet": 1.0}, "bias": 0.0},
           "cascade": {"first_view": 0, "first_members": names, "margin_logit": 1.0,
                       "weights": {"resnet": 0.0, "mobilenet": 1.0}, "bias": 0.0}}
    got = agree.served_member_logit(ens, names, sc, "test")
    assert got[0] == 3.0  # first view 3.0: far from both edges (logit 0 and -0.41)
    assert got[1] == pytest.approx(0.7 / 3)  # first view -0.1: near, so the mean of views
    ens.pop("cascade")
    assert np.allclose(agree.served_member_logit(ens, names, sc, "test"), [2.0, 0.7 / 3])

"""The agreement rule (`model_export.agree`): a face is called FAKE only where each detector of
the view cascade's first stage on its own finds it fake too.

On the shipped files and real and fake photographs from ``../shared/data``: a threshold no face
reaches turns every FAKE into UNSURE with the note and changes nothing else; thresholds every
face reaches answer as the ensemble without the rule; the shipped rule holds back exactly the
FAKE faces one of whose members scores under its own threshold. Also the video track rule, the
share page and what `agree` measures.
"""

from __future__ import annotations

import json

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


def _no_gate(value, held=None):
    """No gate; with ``value`` None no agreement rule, else every member the shipped rule asks
    at threshold ``value`` (``held`` alone at 0.999999 if named)."""
    def change(card):
        card.pop("gate", None)
        if value is None:
            card.pop("agreement", None)
        else:
            card["agreement"] = {**card.get("agreement", {}), "members": {
                n: 0.999999 if n == held else value for n in agree.rule_members(card)}}
    return change


@pytest.mark.parametrize("held", [None, "resnet", "mobilenet"])
async def test_only_faces_every_member_confirms_are_called_fake(tmp_path, photos, held):
    """No member confirms, or one of them does not: the same."""
    held = await _answers(_models_with(tmp_path / "a", _no_gate(1e-6 if held else 0.999999,
                                                                 held)), photos)
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


async def test_served_verdicts_compares_with_the_ensemble_without_the_rule(tmp_path, photos):
    from model_export.served_verdicts import answers
    from service.detection.detector import Detector, prepare

    models = _models_with(tmp_path / "a", _no_gate(0.999999))
    bare = await _answers(_models_with(tmp_path / "c", _no_gate(None)), photos)
    det = Detector(load_ensemble(models, "cpu", 1), max_batch=1, max_wait_ms=0,
                   max_image_pixels=40_000_000)
    rule = det.ensemble.agreement
    held_back = 0
    try:
        for data, b in zip(photos, bare):
            prep = prepare(data, det.spec, det.max_image_pixels, det.finder)
            scored = det.score_many([prep])[0] if prep.face_found else (None, None, None)
            now, before = answers(det, prep, scored, "agreement")
            assert before["verdict"] == b["verdict"] and now["verdict"] != "fake"
            held_back += b["verdict"] == "fake"
            assert det.ensemble.agreement is rule, "the rule is put back"
    finally:
        det.prepare_pool.shutdown()
        det.infer_pool.shutdown()
    assert held_back >= 1


async def test_the_shipped_rule_holds_back_what_its_members_do_not_confirm(photos):
    ens = json.loads((MODELS / "ensemble.json").read_text())
    if "agreement" not in ens:
        pytest.skip("the shipped ensemble has no agreement rule")
    own = ens["agreement"]["members"]
    assert sorted(own) == sorted(ens["cascade"]["first_members"])
    for n, t in own.items():
        assert t == json.loads((MODELS / f"{n}.card.json").read_text())["threshold"]
    for a in await _answers(MODELS, photos):
        for f in a["faces"]:
            if f["too_small"] or f.get("unfamiliar") or f["cut_off"]:
                continue
            # each member's score rounded to 4 places, as the answer shows it
            near = any(abs(f["models"][n] - t) < 1e-4 for n, t in own.items())
            assert near or f["confirmed"] is all(f["models"][n] >= t for n, t in own.items())
            if f["score"] >= ens["threshold"]:
                assert (f["verdict"] == "fake") is f["confirmed"]
                if not f["confirmed"]:
                    assert f["note"] == UNCONFIRMED_NOTE


def test_a_rule_the_ensemble_cannot_serve_is_refused(tmp_path):
    with pytest.raises(ModelsError, match="not a member"):
        load_ensemble(_models_with(tmp_path / "a", lambda c: c.update(
            agreement={"members": {"mobilenet": 0.5, "x": 0.5}})), "cpu", 1)
    with pytest.raises(ModelsError, match="not a probability"):
        load_ensemble(_models_with(tmp_path / "b", lambda c: c.update(
            agreement={"members": {"mobilenet": 1.5}})), "cpu", 1)
    with pytest.raises(ModelsError, match="map member names"):
        load_ensemble(_models_with(tmp_path / "d", lambda c: c.update(
            agreement={"member": "mobilenet", "threshold": 0.5})), "cpu", 1)
    first = json.loads((MODELS / "ensemble.json").read_text())["cascade"]["first_members"]
    other = next(m for m in ("vgg16", "resnet") if m not in first)
    with pytest.raises(ModelsError, match="first stage"):
        load_ensemble(_models_with(tmp_path / "c", lambda c: c.update(
            agreement={"members": {"mobilenet": 0.5, other: 0.5}})), "cpu", 1)


def test_a_track_most_of_whose_frames_are_unconfirmed_is_not_fake():
    rules = dict(threshold=0.8, band=(0.2, 0.8), trim=0.0, min_frames=3, max_disagreement=0.5)
    scores = [0.95, 0.9, 0.93, 0.97]
    assert combine_track(scores, **rules)["verdict"] == "fake"
    assert combine_track(scores, **rules, confirmed=[True, False, True, None])["verdict"] == "fake"
    out = combine_track(scores, **rules, confirmed=[False, False, True, False])
    assert out["verdict"] == "uncertain" and "not every detector" in out["note"]
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
    assert rows.count("not every detector finds it fake") == 1
    assert rows.count("unlike the faces the detectors learned from") == 1


def test_the_summary_counts_the_images_the_rule_holds_back():
    measured = {"split": "test", "per_source": {
        "a/real": {"served": {"fake": 0.0, "images": 10}, "before": {"fake": 0.1, "images": 10}},
        "b/fake": {"served": {"fake": 0.2, "images": 5}, "before": {"fake": 0.6, "images": 5}}},
        "all": {"real": {"served": {"fake": 0.0, "images": 10},
                         "before": {"fake": 0.1, "images": 10}}}}
    out = agree.summary(measured)["per_source"]
    assert out["a/real"] == {"images": 10, "fake_without_rule": 0.1, "fake_with_rule": 0.0}
    assert out["b/fake"]["fake_with_rule"] == 0.2 and out["all reals"]["images"] == 10


def test_the_rule_asks_the_first_stage_or_every_member():
    ens = {"members": ["vgg16", "resnet", "mobilenet"],
           "cascade": {"first_members": ["resnet", "mobilenet"]}}
    assert agree.rule_members(ens) == ["resnet", "mobilenet"]
    assert agree.rule_members({"members": ens["members"]}) == ens["members"]

"""The familiarity gate (`model_export.gate`): a face unlike every face the detectors learned
from is never called FAKE or REAL.

On the shipped files: the mobilenet's ONNX files carry the gate's distance as an extra output
without changing its logit or activation map, the distance is the fitted statistic, and the
service turns a FAKE or REAL on an unfamiliar face into UNSURE (and changes nothing else), on real and
fake photographs from ``../shared/data``.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from model_export import gate
from model_export.served_verdicts import answers
from service.detection.detector import SEVERITY, UNFAMILIAR_NOTE, Detector, prepare
from service.detection.models import ModelsError, load_ensemble
from tests.support.paths import REPO, require_shared_data, sample_images

MODELS = REPO / "models"


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    require_shared_data()
    return [p.read_bytes() for s in ("dfdc-faces", "gan-faces-extra", "tpdne-unsplash",
                                     "sdfd-sd21", "celebrity-press", "snapshots")
            for p in sample_images(5, source=s)]


def test_fit_whitens_and_the_limit_holds_back_the_share_of_every_source():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(8, 8))
    cov = mix @ mix.T + np.eye(8)
    f = np.concatenate([rng.multivariate_normal(np.full(8, m), cov, 3000) for m in (-1.0, 1.0)])
    groups = np.repeat(["a/real", "b/fake"], 3000)
    g = gate.fit(f, groups)
    assert g["groups"] == ["a/real", "b/fake"] and g["means"].shape == (2, 8)
    w = g["whiten"].astype(np.float64)
    assert np.allclose(w @ w.T, np.linalg.inv(np.cov(f[:3000].T)), rtol=0.15, atol=0.02)
    d = gate.distance(f, g)
    assert 6.0 < d.mean() < 8.5  # about chi-square with 8 degrees of freedom (nearer of two means)
    # two sources, one farther out: the limit holds back at most 10 % of each, exactly 10 % of
    # the farther one
    sources = np.where(rng.random(len(d)) < 0.5, "near", "far")
    d = np.where(sources == "far", d * 1.5, d)
    limit = gate.limit_for(d, sources, 0.1)
    assert (d[sources == "far"] > limit).mean() == pytest.approx(0.1, abs=0.002)
    assert (d[sources == "near"] > limit).mean() < 0.05
    far = rng.multivariate_normal(np.full(8, 6.0), cov, 200)
    assert (gate.distance(far, g) > limit).mean() > 0.9


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_the_shipped_files_carry_the_fitted_distance_and_nothing_else_changed(kind, photos):
    card = json.loads((MODELS / "mobilenet.card.json").read_text())
    model = onnx.load(str(MODELS / card["files"][kind]))
    assert card["outputs"]["unfamiliarity"] == gate.OUTPUT
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    fitted = {"means": inits[gate.PREFIX + "means"], "whiten": inits[gate.PREFIX + "whiten"]}
    ens = load_ensemble(MODELS, "cpu", 1)
    detector = Detector(ens, max_batch=16, max_wait_ms=2, max_image_pixels=40_000_000)
    x = np.concatenate([p.x for p in (prepare(d, detector.spec, detector.max_image_pixels,
                                              detector.finder) for d in photos[:12])])
    detector.prepare_pool.shutdown()
    attached = gate.session(model)
    plain = gate.session(gate.strip(model))
    probe = gate.session(gate.attach(model, None))
    logit, cam, dist = attached.run(["logit", "cam", gate.OUTPUT], {"image": x})
    logit0, cam0 = plain.run(["logit", "cam"], {"image": x})
    assert np.array_equal(logit, logit0) and np.array_equal(cam, cam0)
    [features] = probe.run([gate.FEATURES], {"image": x})
    assert features.shape == (len(x), fitted["means"].shape[1])
    assert np.allclose(dist, gate.distance(features, fitted), rtol=1e-4, atol=1e-3)
    assert gate.strip(gate.attach(model, fitted)).SerializeToString() == \
        gate.strip(model).SerializeToString(), "attaching twice does not stack gates"


def _models_with(tmp_path, change) -> object:
    """A copy of ``models/`` whose ensemble.json was changed by ``change(card)``."""
    out = tmp_path / "models"
    shutil.copytree(MODELS, out, ignore=shutil.ignore_patterns("*.png"))
    card = json.loads((out / "ensemble.json").read_text())
    change(card)
    (out / "ensemble.json").write_text(json.dumps(card))
    return out


async def _answers(models_dir, photos) -> list[dict]:
    detector = Detector(load_ensemble(models_dir, "cpu", 1), max_batch=16, max_wait_ms=2,
                        max_image_pixels=40_000_000)
    detector.start()
    try:
        return [(await detector.analyze(d))[0] for d in photos]
    finally:
        await detector.stop()


async def test_an_unfamiliar_face_is_never_called_fake_or_real(tmp_path, photos):
    """Every face unfamiliar (limit below every distance): each FAKE and each REAL becomes UNSURE
    with the note, the scores do not change, and the image is UNSURE; no face unfamiliar: the
    answers of the ensemble without a gate. A card that holds back FAKE only (as before
    2026-11-30, and any card without ``holds``) leaves REAL alone."""
    def limit(value, holds=None):
        def change(card):
            card.pop("agreement", None)  # the gate alone: the rule would hold back most FAKEs
            card["gate"].update(limit=value)
            if holds is None:
                card["gate"].pop("holds", None)
            else:
                card["gate"]["holds"] = holds
        return change

    shipped = json.loads((MODELS / "ensemble.json").read_text())["gate"]
    assert gate.HOLDS == ("fake", "real") and shipped["holds"] == ["fake", "real"]
    held = await _answers(_models_with(tmp_path / "a", limit(-1.0, list(gate.HOLDS))), photos)
    fake_only = await _answers(_models_with(tmp_path / "d", limit(-1.0)), photos)
    open_ = await _answers(_models_with(tmp_path / "b", limit(1e12, list(gate.HOLDS))), photos)
    bare = await _answers(_models_with(tmp_path / "c", lambda card: [
        card.pop("gate"), card.pop("agreement", None)]), photos)
    fakes = reals = 0
    for h, f1, o, b in zip(held, fake_only, open_, bare):
        assert [f["score"] for f in h["faces"]] == [f["score"] for f in b["faces"]]
        assert [f["verdict"] for f in o["faces"]] == [f["verdict"] for f in b["faces"]]
        assert all(f["unfamiliar"] is False for f in o["faces"])
        assert "unfamiliar" not in json.dumps(b["faces"])
        assert o["verdict"] == b["verdict"]
        for fh, f1h, fb in zip(h["faces"], f1["faces"], b["faces"]):
            assert fh["unfamiliar"] is True and f1h["unfamiliar"] is True
            assert fh["verdict"] == "uncertain"
            if fb["verdict"] == "fake":
                fakes += 1
                assert fh["note"] == UNFAMILIAR_NOTE
                assert f1h["verdict"] == "uncertain" and f1h["note"] == UNFAMILIAR_NOTE
            elif fb["verdict"] == "real":
                reals += 1
                assert fh["note"] == UNFAMILIAR_NOTE
                assert f1h["verdict"] == "real" and "note" not in f1h
            else:
                assert f1h["verdict"] == fb["verdict"]
        if b["face_found"]:
            assert h["verdict"] == "uncertain"
        if b["verdict"] in ("fake", "real"):
            assert h["note"] == UNFAMILIAR_NOTE
        assert f1["verdict"] == ("uncertain" if b["verdict"] == "fake" else b["verdict"])
    assert fakes >= 3 and reals >= 3, "the sample holds faces the ensemble calls FAKE and REAL"
    # served_verdicts' two answers from one scoring: the served card's, and FAKE-only's
    det = Detector(load_ensemble(_models_with(tmp_path / "e", limit(-1.0, list(gate.HOLDS))),
                                 "cpu", 1), max_batch=16, max_wait_ms=2,
                   max_image_pixels=40_000_000)
    for data, h, f1 in zip(photos, held, fake_only):
        prep = prepare(data, det.spec, det.max_image_pixels, det.finder)
        scored = det.score_many([prep])[0] if prep.face_found else (None, None, None)
        now, before = answers(det, prep, scored)
        assert (now["verdict"], before["verdict"]) == (h["verdict"], f1["verdict"])
        assert det.ensemble.gate.holds == gate.HOLDS, "the detector's gate is left as it was"
    det.prepare_pool.shutdown()
    det.infer_pool.shutdown()


def test_an_image_is_unsure_when_any_judged_face_is_held_back(photos):
    """An image is REAL only if every face it judges is: one face held back by the gate makes
    it UNSURE even when the other faces score more fake but stay under the band."""
    assert SEVERITY == {"fake": 2, "uncertain": 1, "real": 0}
    ens = load_ensemble(MODELS, "cpu", 1)
    detector = Detector(ens, max_batch=16, max_wait_ms=2, max_image_pixels=40_000_000)
    k = detector.views_per_face
    found = None
    for data in photos:  # a real photo whose mirrored pair gives two faces called REAL
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        pair = cv2.imencode(".png", np.hstack([img, cv2.flip(img, 1)]))[1].tobytes()
        prep = prepare(pair, detector.spec, detector.max_image_pixels, detector.finder)
        if len(prep.boxes) != 2:
            continue
        logits, cams, dist = detector.score_many([prep])[0]
        dist = np.where(np.isnan(dist), np.nan, 0.0)  # every face familiar
        plain = detector.summarize(prep, logits, cams, dist)[0]
        if [f["verdict"] for f in plain["faces"]] == ["real", "real"]:
            found = prep, logits, cams, dist, plain
            break
    detector.prepare_pool.shutdown()
    assert found is not None, "no sample photo gives two faces called REAL"
    prep, logits, cams, dist, plain = found
    assert plain["verdict"] == "real"
    lower = min(range(2), key=lambda i: plain["faces"][i]["score"])
    far = dist.copy()
    far[lower * k + ens.gate.view] = ens.gate.limit + 1.0  # only the less fake face unfamiliar
    out = detector.summarize(prep, logits, cams, far)[0]
    assert out["faces"][lower]["verdict"] == "uncertain"
    assert out["faces"][1 - lower]["verdict"] == "real"
    assert out["verdict"] == "uncertain" and out["decisive_face"] == lower
    assert out["note"] == UNFAMILIAR_NOTE
    detector.infer_pool.shutdown()


def test_a_gate_the_files_cannot_serve_is_refused(tmp_path):
    with pytest.raises(ModelsError, match="not a member"):
        load_ensemble(_models_with(tmp_path / "a", lambda c: c["gate"].update(member="x")),
                      "cpu", 1)
    with pytest.raises(ModelsError, match="first view"):
        load_ensemble(_models_with(tmp_path / "b", lambda c: c["gate"].update(view=1)), "cpu", 1)
    for holds in ([], ["uncertain"], ["fake", "maybe"]):
        with pytest.raises(ModelsError, match="holds"):
            load_ensemble(_models_with(tmp_path / f"h{len(holds)}{holds[-1:]}",
                                       lambda c, h=holds: c["gate"].update(holds=h)), "cpu", 1)
    other = _models_with(tmp_path / "c", lambda c: None)
    card = json.loads((other / "mobilenet.card.json").read_text())
    (other / card["files"]["cpu"]).write_bytes(
        gate.strip(onnx.load(str(other / card["files"]["cpu"]))).SerializeToString())
    with pytest.raises(ModelsError, match="lacks the outputs"):
        load_ensemble(other, "cpu", 1)


def _fused_convs(model: onnx.ModelProto, tmp_path) -> int:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sum(n.op_type == "QLinearConv" for n in onnx.load(str(tmp_path / "optimized.onnx")
                                                            ).graph.node)


def test_the_gate_keeps_every_quantized_convolution(tmp_path):
    """Reading the classifier's input directly stops ONNX Runtime fusing the convolution before
    it (11 % more CPU for the member, `bench.gate_cost`); read through the classifier, every
    convolution of the INT8 file stays quantized."""
    card = json.loads((MODELS / "mobilenet.card.json").read_text())
    model = onnx.load(str(MODELS / card["files"]["cpu"]))
    fused = _fused_convs(gate.strip(model), tmp_path)
    assert fused > 20 and _fused_convs(model, tmp_path) == fused


def test_the_share_page_says_why_a_face_is_not_called_fake():
    from service.handlers.shares import _faces_rows

    rows = _faces_rows({"decisive_face": 0, "faces": [
        {"verdict": "uncertain", "unfamiliar": True, "score": 0.93, "models": {}},
        {"verdict": "real", "unfamiliar": False, "score": 0.1, "models": {}}]})
    assert rows.count("unlike the faces the detectors learned from") == 1

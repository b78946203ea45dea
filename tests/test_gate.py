"""The familiarity gate (`model_export.gate`): a face unlike every face the detectors learned
from is never called FAKE.

On the shipped files: the mobilenet's ONNX files carry the gate's distance as an extra output
without changing its logit or activation map, the distance is the fitted statistic, and the
service turns a FAKE on an unfamiliar face into UNSURE (and changes nothing else), on real and
fake photographs from ``../shared/data``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from model_export import gate
from service.detection.detector import UNFAMILIAR_NOTE, Detector, prepare
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


async def test_an_unfamiliar_face_is_never_called_fake(tmp_path, photos):
    """Every face unfamiliar (limit below every distance): each FAKE becomes UNSURE with the
    note, and nothing else changes; no face unfamiliar: the answers of the ensemble without a
    gate."""
    def limit(value):
        return lambda card: card["gate"].update(limit=value)

    held = await _answers(_models_with(tmp_path / "a", limit(-1.0)), photos)
    open_ = await _answers(_models_with(tmp_path / "b", limit(1e12)), photos)
    bare = await _answers(_models_with(tmp_path / "c", lambda card: card.pop("gate")), photos)
    fakes = 0
    for h, o, b in zip(held, open_, bare):
        assert [f["score"] for f in h["faces"]] == [f["score"] for f in b["faces"]]
        assert [f["verdict"] for f in o["faces"]] == [f["verdict"] for f in b["faces"]]
        assert all(f["unfamiliar"] is False for f in o["faces"])
        assert "unfamiliar" not in json.dumps(b["faces"])
        assert o["verdict"] == b["verdict"]
        for fh, fb in zip(h["faces"], b["faces"]):
            assert fh["unfamiliar"] is True
            if fb["verdict"] == "fake":
                fakes += 1
                assert fh["verdict"] == "uncertain" and fh["note"] == UNFAMILIAR_NOTE
            else:
                assert fh["verdict"] == fb["verdict"]
        assert h["verdict"] != "fake"
        if b["verdict"] == "fake":
            assert h["verdict"] == "uncertain" and h["note"] == UNFAMILIAR_NOTE
    assert fakes >= 3, "the sample holds faces the ensemble calls FAKE"


def test_a_gate_the_files_cannot_serve_is_refused(tmp_path):
    with pytest.raises(ModelsError, match="not a member"):
        load_ensemble(_models_with(tmp_path / "a", lambda c: c["gate"].update(member="x")),
                      "cpu", 1)
    with pytest.raises(ModelsError, match="first view"):
        load_ensemble(_models_with(tmp_path / "b", lambda c: c["gate"].update(view=1)), "cpu", 1)
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

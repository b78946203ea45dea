"""The GPU tooling on a small synthetic face cache: pack/unpack, the derived service crops, and a
whole `gpu_batch run` (on the CPU) and `import`, as the device runs them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from model_export import common, data, gpu_batch, gpu_pack, loso, reproduce  # noqa: E402
from service.detection import preprocess  # noqa: E402
from tests.test_model_export import synthetic_face  # noqa: E402

N_PER = 6  # faces per (source, label, split) group


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A tiny cache of every source and split (rows the service judges), as `data` lays it out."""
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv("REALCHECK_CACHE_DIR", str(tmp_path / "cache"))  # for `train` children
    fakes = {"gan-faces-extra", "sdfd-sd21"}
    both = {"dfdc-faces", "tpdne-unsplash"}
    records = []
    for s in data.SOURCES:
        labels = [0, 1] if s in both else [1] if s in fakes else [0]
        for split in ("train", "val", "test"):
            for y in labels:
                for k in range(N_PER):
                    records.append({"path": f"{s}/{split}/{y}/{k}.jpg", "label": y, "source": s,
                                    "split": split, "group": f"{split}{k}"})
    n = len(records)
    train = np.stack([synthetic_face(data.TRAIN_SIDE, i) for i in range(n)])
    p = data.cache_paths(common.SPEC)
    p["dir"].mkdir(parents=True)
    np.save(p["train"], train)
    np.save(p["serve"], gpu_pack.serve_from_train(train, common.SPEC["face_size"]))
    np.save(p["dir"] / "faces.npy", np.tile([[90.0, 1, 0.9]], (n, 1)).astype(np.float32))
    np.save(p["dir"] / "sizes.npy", np.tile([[400, 300]], (n, 1)).astype(np.int32))
    p["meta"].write_text(json.dumps({"records": records, "spec": common.SPEC, "data_dir": "-"}))
    return p


def test_serve_crops_cut_from_training_crops_match_the_service_cut():
    """`unpack` rebuilds the service's crop from the training crop: same centre, 1/TRAIN_ZOOM
    of the context. Checked against `align_face` itself on a photo-like image."""
    img = cv2.resize(synthetic_face(160, 3), (640, 640), interpolation=cv2.INTER_CUBIC)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    eyes = np.array([[270.0, 290.0], [370.0, 285.0]])
    kp = np.vstack([eyes, [[320, 340], [320, 390], [230, 300], [410, 300]]])
    serve, _ = preprocess.align_face(img, kp, spec)
    train, _ = preprocess.align_face(img, kp, spec, data.TRAIN_SIDE, data.TRAIN_ZOOM)
    cut = gpu_pack.serve_from_train(train[None], spec.face_size)[0]
    diff = np.abs(cut.astype(int) - serve.astype(int))
    assert diff.mean() < 3 and np.percentile(diff, 99) < 20
    shifted = np.roll(serve, 4, axis=1)  # a cut off by 4 px would not pass
    assert np.abs(cut.astype(int) - shifted.astype(int)).mean() > diff.mean() + 1


def test_pack_unpack_round_trip(cache_dir, tmp_path, monkeypatch):
    before = np.load(cache_dir["train"])
    parts = gpu_pack.pack(tmp_path / "pack", parts=2)
    assert [d.name for d in parts] == ["part1", "part2"]
    sizes = [(d / "crops.bin").stat().st_size for d in parts]
    assert abs(sizes[0] - sizes[1]) < 0.2 * sum(sizes)  # about equal parts
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "elsewhere")
    with pytest.raises(SystemExit, match="in none of the parts"):
        gpu_pack.unpack(parts[:1])
    out = data.cache_paths(common.SPEC)
    assert gpu_pack.unpack(parts) == out["dir"]
    after = np.load(out["train"])
    assert after.shape == before.shape
    assert np.abs(after.astype(int) - before.astype(int)).mean() < 3  # JPEG quality 90
    serve = np.load(out["serve"])
    assert np.array_equal(serve, gpu_pack.serve_from_train(after, common.SPEC["face_size"]))
    assert json.loads(out["meta"].read_text()) == json.loads(cache_dir["meta"].read_text())
    c = data.Cache(common.SPEC)
    assert len(c.index("train")) == len(c.records) // 3


def test_plans_follow_the_recipes():
    seeds = gpu_batch.PLANS["seeds"]
    mob = [r for r in seeds.values() if r["name"] == "mobilenet"]
    ref = reproduce.LOSO["mobilenet"]
    for r in mob:
        a = r["args"]
        assert a[a.index("--epochs") + 1] == str(ref["epochs"])
        assert a[a.index("--epoch-samples") + 1] == str(ref["epoch_samples"])
        assert " ".join(ref["extra"]) in " ".join(a)
    for plan in gpu_batch.PLANS.values():
        for run, r in plan.items():
            held = r["args"][r["args"].index("--exclude-source") + 1] if (
                "--exclude-source" in r["args"]) else None
            assert (held is None) == ("/" not in run) and (held is None or run.endswith(held))


def test_run_and_import_as_on_the_device(cache_dir, tmp_path, monkeypatch):
    """One kept run and one leave-one-source-out run of each plan, trained for one short epoch
    on the CPU, scored, written as the device returns them and imported as runs."""
    monkeypatch.setattr(gpu_batch, "GPU_RUNS", tmp_path / "gpu")
    out = tmp_path / "out"
    plan = {"resnet_w1_b8": gpu_batch.PLANS["full-width"]["resnet_w1_b8"],
            "loso_mobilenet_b8_s1/snapshots":
                gpu_batch.PLANS["seeds"]["loso_mobilenet_b8_s1/snapshots"]}
    monkeypatch.setattr(gpu_batch, "PLANS", {"test": plan})
    gpu_batch.main(["run", "--plan", "test", "--out", str(out), "--device", "cpu",
                    "--epochs", "1", "--epoch-samples", "64", "--deadline", "600"])
    names = sorted(p.name for p in out.iterdir())
    assert "logits.npz" in names and "gate.npz" in names and "summaries.json" in names
    pieces = [n for n in names if n.startswith("resnet_w1_b8.pt.")]
    assert pieces and all((out / n).stat().st_size <= gpu_batch.PIECE for n in pieces)
    logits = np.load(out / "logits.npz")
    full = logits["resnet_w1_b8"]
    assert np.isfinite(full).all()  # a run on every source: every row
    own = logits["loso_mobilenet_b8_s1__snapshots"]
    cache = data.Cache(common.SPEC)
    rows = np.unique(np.concatenate(list(loso.faces(cache, "snapshots").values())))
    assert np.isfinite(own[rows]).all() and np.isnan(np.delete(own, rows)).all()

    shutil.rmtree(tmp_path / "gpu")  # imported on another machine than the one it trained on
    gpu_batch.import_dir(out)
    kept = tmp_path / "gpu" / "resnet_w1_b8"
    ck = torch.load(kept / "best.pt", weights_only=False)
    model = common.build_named("resnet", width=1.0)
    model.load_state_dict(ck["model"])  # whole, float32 again
    assert all(v.dtype != torch.float16 for v in ck["model"].values())
    run = tmp_path / "gpu" / "loso_mobilenet_b8_s1" / "snapshots"
    assert not (run / "best.pt").exists()
    lo = loso.run_logits(cache, "mobilenet", run, "snapshots")  # read, not scored again
    idx = loso.faces(cache, "snapshots")
    assert np.array_equal(lo["own"], own[idx["own"]])
    assert set(np.load(run / "gate_distances.npz").files) == {"val", "own"}
    assert json.loads((run / "args.json").read_text())["exclude_source"] == "snapshots"

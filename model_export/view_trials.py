"""Cheaper detector inputs against the shipped three views, on the saved scores (not shipped).

    python -m model_export.view_trials --input full --members resnet mobilenet
    python -m model_export.view_trials --input centre --members resnet mobilenet

``full``: the whole 112-px aligned face in one pass (the networks are fully convolutional);
``centre``: the centre 96-px view alone. Each member's checkpoint (``runs/NAME/best.pt``, PyTorch
FP32) scores val, test and the changed test copies that way; the figures are set beside the shipped
INT8 three-view scores (``runs/scores_NAME.npz``), each combined by a logistic fit on val and
thresholded by the shipping rule: AUC, test reals and fakes called fake, the worst real source,
and the invariance (copies of real faces that crossed to FAKE). Scores are cached in
``runs/view_trial_INPUT_NAME.npz``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from model_export import common, metrics
from model_export import robust as robust_mod
from model_export.data import Cache
from model_export.evaluate import choose_threshold, invariance, load_checkpoint
from model_export.train import predict_views
from service.detection import preprocess


def _score(name: str, kind: str, cache: Cache) -> dict:
    path = common.RUNS_DIR / f"view_trial_{kind}_{name}.npz"
    if path.exists():
        return dict(np.load(path))
    torch.set_num_threads(1)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    model = load_checkpoint(name, common.RUNS_DIR / name)

    def run(faces, batch=64):
        if kind == "centre":
            return predict_views(model, faces, spec, crops=[[0.5, 0.5]])
        out = []
        with torch.no_grad():
            for i in range(0, len(faces), batch):
                x = preprocess.to_input(np.asarray(faces[i:i + batch]), spec)
                out.append(model(torch.from_numpy(x))[0].numpy())
        return np.concatenate(out)

    r = np.load(robust_mod.robust_path(common.SPEC))
    crops = r["crops"]
    n, c = crops.shape[:2]
    res = {"val": run(cache.serve[cache.index("val")]), "test": run(cache.serve[cache.index("test")]),
           "robust": run(crops.reshape(n * c, *crops.shape[2:])).reshape(n, c),
           "robust_orig": run(cache.serve[r["index"]])}
    np.savez(path, **res)
    return res


def _figures(cache: Cache, scores: list[dict]) -> dict:
    va, te = cache.index("val"), cache.index("test")
    yv, yt, sv, st = cache.labels[va], cache.labels[te], cache.sources[va], cache.sources[te]
    V = np.stack([s["val"] for s in scores], 1)
    T = np.stack([s["test"] for s in scores], 1)
    w, b = metrics.fit_logistic(V, yv.astype(float))
    lv, lt = V @ w + b, T @ w + b
    t, band = choose_threshold(yv, preprocess.sigmoid(lv), sv)
    pt = preprocess.sigmoid(lt)
    r = np.load(robust_mod.robust_path(common.SPEC))
    inv = invariance(cache, {
        "index": r["index"], "found": r["found"],
        "logits": np.stack([s["robust"] for s in scores], -1) @ w + b,
        "orig": np.stack([s["robust_orig"] for s in scores], -1) @ w + b,
        "conditions": [str(x) for x in r["conditions"]]}, t, band)
    return {
        "val_auc": round(metrics.roc_auc(yv, lv), 4), "test_auc": round(metrics.roc_auc(yt, lt), 4),
        "threshold": t,
        "test_reals_called_fake": round(float((pt[yt == 0] >= t).mean()), 4),
        "worst_real_source": round(max(float((pt[(st == s) & (yt == 0)] >= t).mean())
                                       for s in set(st[yt == 0])), 4),
        "test_fakes_called_fake": round(float((pt[yt == 1] >= t).mean()), 4),
        "changed_real_copies_turned_fake": sum(v["reals_turned_fake"] for v in inv.values()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--input", choices=["full", "centre"], default="full")
    ap.add_argument("--members", nargs="+", default=["resnet", "mobilenet"])
    a = ap.parse_args(argv)
    cache = Cache(common.SPEC)
    shipped = [dict(np.load(common.RUNS_DIR / f"scores_{n}.npz")) for n in a.members]
    trial = [_score(n, a.input, cache) for n in a.members]
    print("shipped three views (INT8):", _figures(cache, shipped))
    print(f"{a.input} (FP32):", _figures(cache, trial))


if __name__ == "__main__":
    main()

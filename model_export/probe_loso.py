"""Do frozen ImageNet features generalise to unseen sources better than a trained head?

    python -m model_export.probe_loso

Linear probes on frozen pretrained features are reported to transfer across generators better
than networks trained on the forgeries themselves, which learn the training sources' traces.
This measures that idea with the one ImageNet network the registries offer here (MobileNetV2
blocks 0-10, `model_export.pretrained`, as in the mobilenet member): each face's centre view
(the service's aligned square and first view) through the frozen blocks; the feature is each
channel's mean and standard deviation over the map. Then, for each source held out: a logistic
regression (`metrics.fit_logistic`, standardised features) on the train split of the other
sources, the threshold and band by the shipping rule on their val faces, and `loso`'s figures
on every judged face of the held-out source: its reals called fake and UNSURE, its fakes' AUC
against the seen test reals and against its own reals, and the share caught. The same with no
source held out gives the probe's test figures.

Features are kept in ``runs/probe_features.npz``; the figures go to ``runs/probe_loso.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from model_export import common, metrics, pretrained
from model_export.data import SOURCES, Cache
from model_export.loso import held_out_figures
from service.detection import preprocess

FEATURES = common.RUNS_DIR / "probe_features.npz"
OUT = common.RUNS_DIR / "probe_loso.json"


def features(cache: Cache, batch: int = 256) -> np.ndarray:
    """(records, 2 * channels) per face: mean and std of each block-10 channel, centre view;
    zeros for records without a judged face."""
    if FEATURES.exists():
        return np.load(FEATURES)["x"]
    torch.set_num_threads(1)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    net = pretrained.MobileNetV2Blocks(10)
    if not (pretrained.CACHE_DIR / pretrained.NPZ_NAME).exists():
        pretrained.fetch()
    pretrained.load_imagenet(net)
    net.eval()
    lo, hi = pretrained.INPUT_RANGE
    s = spec.input_size
    (x0, y0), = preprocess.crop_origins(spec.face_size, s, spec.crops[:1])
    idx = np.flatnonzero(cache.found & (cache.face_side >= cache.meta["spec"]["min_face"]))
    out = np.zeros((len(cache.labels), 2 * net.out_channels), np.float32)
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            rows = idx[i:i + batch]
            f = np.asarray(cache.serve[rows])[:, y0:y0 + s, x0:x0 + s]
            x = torch.from_numpy(preprocess.to_input(f, spec))
            mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
            std = torch.tensor(spec.std).view(1, 3, 1, 1)
            m = net((x * std + mean) * (hi - lo) + lo)
            out[rows] = torch.cat([m.mean((2, 3)), m.std((2, 3))], 1).numpy()
    np.savez(FEATURES, x=out)
    return out


def probe(cache: Cache, x: np.ndarray, held_out: str | None) -> dict:
    from model_export.evaluate import choose_threshold, full_metrics

    tr, va = cache.index("train", exclude_source=held_out), cache.index("val", exclude_source=held_out)
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    w, b = metrics.fit_logistic((x[tr] - mu) / sd, cache.labels[tr].astype(np.float64))

    def logit(rows):
        return ((x[rows] - mu) / sd) @ w + b

    y_va, s_va = cache.labels[va], cache.sources[va]
    t, band = choose_threshold(y_va, preprocess.sigmoid(logit(va)), s_va)
    out = {"threshold": t, "uncertain_band": band, "val_auc": metrics.roc_auc(y_va, logit(va))}
    te = cache.index("test", exclude_source=held_out)
    if held_out is None:
        m = full_metrics(cache.labels[te], logit(te), cache.sources[te], t, band)
        out["test"] = {k: m[k] for k in ("auc", "fpr", "recall", "uncertain_fraction")}
        return out
    own = np.concatenate([cache.index(s, only_source=held_out) for s in ("train", "val", "test")])
    te_reals = te[cache.labels[te] == 0]
    lo = logit(own)
    p = preprocess.sigmoid(lo)
    out.update(held_out_figures(cache.labels[own], lo, logit(te_reals), p >= t,
                                (p >= band[0]) & (p < t)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", nargs="*", default=SOURCES)
    a = ap.parse_args(argv)
    cache = Cache(common.SPEC)
    t0 = time.time()
    x = features(cache)
    out = {"method": __doc__.split("\n\n")[2].replace("\n", " "),
           "command": "python -m model_export.probe_loso", "feature_seconds": round(time.time() - t0, 1),
           "all_sources": probe(cache, x, None), "held_out": {}}
    print("all sources", out["all_sources"], flush=True)
    for s in a.sources:
        out["held_out"][s] = probe(cache, x, s)
        print(s, out["held_out"][s], flush=True)
    OUT.write_text(json.dumps(metrics.rounded(out, 4), indent=2))


if __name__ == "__main__":
    main()

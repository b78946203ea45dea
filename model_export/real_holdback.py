"""Two more ways to hold back REAL, measured on the leave-one-source-out runs (neither shipped).

    python -m model_export.real_holdback [--features imagenet|head] [--sources ...]

The service answers UNSURE instead of REAL for a face the familiarity gate finds unfamiliar
(`gate`, ``holds``). Trained without the Stable Diffusion faces, the runs still call half of
them REAL. Two stricter rules, each on top of what the service answers (`loso_ensemble`'s
``served``: the gate at its shipped share and the agreement rule), on the same runs:

* ``far_from_reals``: REAL also needs the face within a limit of the nearest *real* group's
  mean (the gate's statistic with the fake groups left out; the limit the smallest that keeps
  ``gate.GATED_SHARE`` of every real source's val reals within it), on the frozen ImageNet
  features (`probe_loso.features`) or the mobilenet run's head features (``--features head``:
  scored with PyTorch on one thread, minutes per source);
* ``a_member_objects``: REAL also needs every member's own score below its own band (chosen by
  the shipping rule on the same val faces): no member alone would call the face anything but
  real.

Per held-out source: its fakes and its reals answered REAL as served, then under each rule; and
the share of the other sources' val reals answered REAL by the combination before and after
the second rule (what it costs on photos the detectors know). Figures go to
``runs/real_holdback_<features>.json``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from model_export import common, gate, metrics
from model_export.data import SOURCES, Cache
from model_export.loso import faces
from model_export.loso_ensemble import Runs, combine, gate_distances, member_logits
from service.detection import preprocess

NAMES = ["resnet", "mobilenet"]


def _features(cache: Cache, kind: str, run, rows: np.ndarray) -> np.ndarray:
    if kind == "imagenet":
        from model_export import probe_loso

        return probe_loso.features(cache)[rows].astype(np.float64)
    torch.set_num_threads(1)
    model = common.build_named(gate.MEMBER)
    model.load_state_dict(torch.load(run / "best.pt", weights_only=False)["model"])
    spec = preprocess.InputSpec.from_card(common.SPEC)
    return gate.torch_features(model, cache, rows, spec).astype(np.float64)


def far_from_reals(cache: Cache, held_out: str, kind: str, runs: Runs) -> np.ndarray:
    """Whether each held-out face lies beyond the limit of the nearest real group's mean."""
    idx = faces(cache, held_out)
    tr = gate.fit_sample(cache, exclude_source=held_out)
    rows = np.concatenate([tr, idx["val"], idx["own"]])
    f = _features(cache, kind, runs.run(gate.MEMBER, held_out), rows)
    f_tr, f_val, f_own = np.split(f, [len(tr), len(tr) + len(idx["val"])])
    g = gate.fit(f_tr, gate.groups_of(cache, tr))
    real = np.array([n.endswith("/real") for n in g["groups"]])
    reals_only = {**g, "means": g["means"][real]}  # the same whitening, the real groups' means
    y_val, s_val = cache.labels[idx["val"]], cache.sources[idx["val"]]
    d_val = gate.distance(f_val, reals_only)[y_val == 0]
    limit = gate.limit_for(d_val, s_val[y_val == 0], gate.GATED_SHARE)
    return gate.distance(f_own, reals_only) > limit


def source_figures(cache: Cache, held_out: str, kind: str, runs: Runs) -> dict:
    from model_export.evaluate import choose_threshold

    idx = faces(cache, held_out)
    lo = {n: member_logits(cache, n, held_out, runs) for n in NAMES}
    y_val, s_val = cache.labels[idx["val"]], cache.sources[idx["val"]]
    z = {k: np.stack([lo[n][k] for n in NAMES], 1) for k in ("val", "own")}
    f, _ = combine(z["val"], y_val)
    t, band = choose_threshold(y_val, preprocess.sigmoid(f(z["val"])), s_val)
    own = {n: choose_threshold(y_val, preprocess.sigmoid(z["val"][:, i]), s_val)
           for i, n in enumerate(NAMES)}
    d = gate_distances(cache, held_out, runs)
    unfamiliar = d["own"] > gate.limit_for(d["val"], s_val, gate.GATED_SHARE)
    real = (preprocess.sigmoid(f(z["own"])) < band[0]) & ~unfamiliar  # as served

    def objects(zz):
        return np.any([preprocess.sigmoid(zz[:, i]) >= own[n][1][0] for i, n in enumerate(NAMES)],
                      axis=0)

    rules = {"far_from_reals": real & ~far_from_reals(cache, held_out, kind, runs),
             "a_member_objects": real & ~objects(z["own"])}
    y = cache.labels[idx["own"]]
    out = {}
    for label, name in ((0, "reals"), (1, "fakes")):
        m = y == label
        if m.any():
            out[f"{name}_called_real"] = {"served": float(real[m].mean()),
                                          **{r: float(v[m].mean()) for r, v in rules.items()}}
    real_val = (preprocess.sigmoid(f(z["val"])) < band[0])[y_val == 0]
    out["val_reals_called_real"] = {
        "combination": float(real_val.mean()),
        "a_member_objects": float((real_val & ~objects(z["val"])[y_val == 0]).mean())}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--features", choices=("imagenet", "head"), default="imagenet")
    ap.add_argument("--sources", nargs="*", default=SOURCES)
    a = ap.parse_args(argv)
    from model_export.evaluate import shipped_balance_groups

    cache = Cache(common.SPEC)
    runs = Runs(shipped_balance_groups())
    out = {"method": __doc__.split("\n\n")[1].replace("\n", " "),
           "command": f"python -m model_export.real_holdback --features {a.features} --sources "
           + " ".join(a.sources), "sources": {}}
    for s in a.sources:
        out["sources"][s] = source_figures(cache, s, a.features, runs)
        print(s, json.dumps(metrics.rounded(out["sources"][s], 3)), flush=True)
    common.write_json(common.RUNS_DIR / f"real_holdback_{a.features}.json",
                      metrics.rounded(out, 4))


if __name__ == "__main__":
    main()

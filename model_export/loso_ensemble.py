"""Leave-one-source-out for an ensemble: the members' runs trained without the same source.

    python -m model_export.loso_ensemble [--members resnet mobilenet] [--sources ...]
                                         [--balance-groups K]

`model_export.loso` trains each recipe without one source and reports each member alone. The
service answers with a combination of its members, so this module combines the runs of the
members trained without the same source, as `evaluate` combines the shipped members: each
member's mean-over-views logit, then the mean or a logistic fit on val (whichever `evaluate`'s
rule picks), the threshold and band by the shipping rule on the val faces of the other sources.
vgg16 has no such runs (the LOSO recipes train the resnet and mobilenet only), so the figures
are for the ensemble without it.

Figures per held-out source, as `loso`: its reals called fake (target at most 5 %) and UNSURE;
its fakes' AUC against the seen test reals and against its own reals, and the share caught.
Beside the combination, the same faces under ``members_agree``: FAKE
only where the combined score reaches the threshold *and* every member's own score reaches that
member's threshold (chosen by the same rule on the same val faces); otherwise UNSURE. It asks
whether disagreement between members marks the faces the ensemble cannot judge. Under
``agreement``, the shipped rule (`model_export.agree`): FAKE only where each run of the members
the rule asks (the shipped cascade's first stage) also reaches its own threshold (chosen by the
rule on the same val faces; the same as ``members_agree`` when those are the runs combined; until
2026-12-01 the mobilenet run alone). And under the
familiarity gate (`model_export.gate`), fitted on the mobilenet run without the source as the
shipped gate is fitted on the shipped member: FAKE only for faces within the limit, at each share
of val faces in ``GATE_SHARES`` (the shipped share is one of them); ``served``: the gate at its
shipped share and the agreement rule together, as the service answers (an unfamiliar face is
UNSURE whatever its score; ``served_gate_on_fake_only``: as it answered before 2026-11-30, when
the gate held back FAKE only). Each also gives the share of the held-out reals and fakes
answered REAL.

The members' logits are kept in ``runs/loso_ensemble/SOURCE_NAME.npz`` (scoring is the slow
part); ``summary.json`` beside them holds the figures. With ``--balance-groups K`` the mobilenet
member is its runs with balanced draws (`loso --balance-groups K`; by default as the shipped
mobilenet was trained), the resnet's are unchanged, and everything goes to
``runs/loso_ensemble_balanceK``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model_export import agree as agree_mod
from model_export import common, gate, metrics
from model_export.data import SOURCES, Cache
from model_export.loso import faces, held_out_figures, loso_dir, run_logits
from service.detection import preprocess

OUT = common.RUNS_DIR / "loso_ensemble"
BALANCED = ("mobilenet",)  # the recipes with balanced-draw LOSO runs
GATE_SHARES = (0.05, 0.10, 0.15, 0.20)
GATE_FILE = "gate_distances.npz"  # in a mobilenet run's folder: its gate's distances


class Runs:
    """Where each member's runs are read and the ensemble's logits and figures written.

    ``override``: member name -> one run of it (trained without the one source scored), e.g. a
    seed trial; the figures then go to ``runs/loso_ensemble_trials/<its folder>-<the run's>``."""

    def __init__(self, balance_groups: int = 0, override: dict[str, Path] | None = None,
                 gate_features: str = "head"):
        self.balance = balance_groups
        self.override = dict(override or {})
        self.gate_features = gate_features
        self.out = OUT.with_name(OUT.name + (f"_balance{balance_groups}" if balance_groups else "")
                                 + ("" if gate_features == "head" else f"_gate-{gate_features}"))
        if self.override:
            name = "+".join(sorted(f"{Path(p).parent.name}-{Path(p).name}"
                                   for v in self.override.values() for p in str(v).split("+")))
            if len(name) > 200:  # many runs: a name the file system takes
                name = name[:150] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
            self.out = OUT.with_name(OUT.name + "_trials") / name

    def dir(self, name: str):
        return loso_dir(name, self.balance if name in BALANCED else 0)

    def run(self, name: str, held_out: str) -> Path:
        """The run of ``name`` trained without ``held_out`` (of several given: the first)."""
        return self.runs(name, held_out)[0]

    def runs(self, name: str, held_out: str) -> list[Path]:
        if name not in self.override:
            return [self.dir(name) / held_out]
        return [Path(p) for p in str(self.override[name]).split("+")]

    def method(self, name: str) -> str:
        if name in self.override:
            return "one run: " + json.loads((self.run(name, "") / "summary.json").read_text())[
                "command"]
        return json.loads((self.dir(name) / "summary.json").read_text())["method"]


def member_logits(cache: Cache, name: str, held_out: str, runs: Runs) -> dict[str, np.ndarray]:
    """The member's logits from its run without ``held_out`` (``loso.run_logits``; the files of
    earlier ensemble runs, ``runs/loso_ensemble/SOURCE_NAME.npz``, are read when there). A member
    given several runs (``--run NAME=DIR+DIR...``) is their mean logit: one head per seed."""
    path = runs.out / f"{held_out}_{name}.npz"
    if path.exists():
        return dict(np.load(path))
    each = [run_logits(cache, name, r, held_out) for r in runs.runs(name, held_out)]
    return {k: np.mean([e[k] for e in each], axis=0) for k in each[0]}


def gate_distances(cache: Cache, held_out: str, runs: Runs) -> dict[str, np.ndarray]:
    """The familiarity gate of the mobilenet run without ``held_out``: its fitted distances of
    the val faces of the other sources and of the held-out faces (cached like the logits).
    With ``runs.gate_features`` "imagenet" the same statistic on the frozen ImageNet features
    instead (`imagenet_gate_distances`)."""
    if runs.gate_features == "imagenet":
        return imagenet_gate_distances(cache, held_out)
    path = runs.out / f"{held_out}_{gate.MEMBER}_gate.npz"
    run = runs.run(gate.MEMBER, held_out)
    kept, best = run / GATE_FILE, run / "best.pt"  # kept: also a run scored where it trained
    if path.exists():
        return dict(np.load(path))
    if kept.exists() and (not best.exists() or kept.stat().st_mtime >= best.stat().st_mtime):
        return dict(np.load(kept))
    torch.set_num_threads(1)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    model = common.build_named(gate.MEMBER)
    model.load_state_dict(torch.load(best, weights_only=False)["model"])
    tr = gate.fit_sample(cache, exclude_source=held_out)
    g = gate.fit(gate.torch_features(model, cache, tr, spec), gate.groups_of(cache, tr))
    idx = faces(cache, held_out)
    out = {k: gate.distance(gate.torch_features(model, cache, idx[k], spec), g)
           for k in ("val", "own")}
    np.savez(kept, **out)  # with the run: every combination of it reads the same
    return out


def imagenet_gate_distances(cache: Cache, held_out: str) -> dict[str, np.ndarray]:
    """The gate's statistic (`gate.fit`, `gate.distance`) on generic features instead of the
    trained head's: each channel's mean and standard deviation of the frozen ImageNet blocks
    (`probe_loso.features`, the same for every run), fitted on the training faces of the other
    sources. Features the detectors were not trained to collapse may notice a new kind of face
    that the head's features, trained on the training sources only, map onto familiar ones."""
    from model_export import probe_loso

    x = probe_loso.features(cache)
    tr = gate.fit_sample(cache, exclude_source=held_out)
    g = gate.fit(x[tr].astype(np.float64), gate.groups_of(cache, tr))
    idx = faces(cache, held_out)
    return {k: gate.distance(x[idx[k]], g) for k in ("val", "own")}


def combine(z_val: np.ndarray, y_val: np.ndarray):
    """`evaluate`'s rule: the mean logit unless a logistic fit on val is >= 0.005 better."""
    w, b = metrics.fit_logistic(z_val, y_val.astype(np.float64))

    def mean(z):
        return z.mean(axis=1)

    def fit(z):
        return z @ w + b

    better = metrics.roc_auc(y_val, fit(z_val)) - metrics.roc_auc(y_val, mean(z_val)) >= 0.005
    return (fit, "logistic_val_fit") if better else (mean, "mean_logit")


def source_figures(cache: Cache, names: list[str], held_out: str, runs: Runs) -> dict:
    from model_export.evaluate import choose_threshold

    idx = faces(cache, held_out)
    lo = {n: member_logits(cache, n, held_out, runs) for n in names}
    y_val, s_val, y_own = cache.labels[idx["val"]], cache.sources[idx["val"]], cache.labels[idx["own"]]
    z = {k: np.stack([lo[n][k] for n in names], 1) for k in idx}
    f, rule = combine(z["val"], y_val)
    c = {k: f(v) for k, v in z.items()}
    t, band = choose_threshold(y_val, preprocess.sigmoid(c["val"]), s_val)
    p_own = preprocess.sigmoid(c["own"])
    fake = p_own >= t
    unsure = (p_own >= band[0]) & (p_own < t)
    out = {**held_out_figures(y_own, c["own"], c["test_reals"], fake, unsure),
           "combination": rule, "threshold": t, "uncertain_band": band,
           "epochs_run": "/".join(str(json.loads((runs.run(n, held_out) / "summary.json")
                                                 .read_text())["epoch"]) for n in names)}
    # members agree: FAKE needs every member at or above its own threshold too
    agree = np.ones_like(fake)
    members = {}
    for i, n in enumerate(names):
        tm, bm = choose_threshold(y_val, preprocess.sigmoid(z["val"][:, i]), s_val)
        pm = preprocess.sigmoid(z["own"][:, i])
        agree &= pm >= tm
        members[n] = held_out_figures(y_own, z["own"][:, i], z["test_reals"][:, i], pm >= tm,
                                      (pm >= bm[0]) & (pm < tm))
    out["members_agree"] = held_out_figures(
        y_own, c["own"], c["test_reals"], fake & agree, unsure | (fake & ~agree))
    out["members"] = members
    asked = agree_mod.rule_members(json.loads((common.MODELS_DIR / "ensemble.json").read_text()))
    if set(asked) <= set(names):  # the agreement rule (`agree`): each member it asks confirms
        confirmed = np.ones_like(fake)
        for n in asked:
            j = names.index(n)
            tm, _ = choose_threshold(y_val, preprocess.sigmoid(z["val"][:, j]), s_val)
            confirmed &= preprocess.sigmoid(z["own"][:, j]) >= tm
        out["agreement"] = held_out_figures(y_own, c["own"], c["test_reals"], fake & confirmed,
                                            unsure | (fake & ~confirmed))
    if gate.MEMBER in names:
        d = gate_distances(cache, held_out, runs)
        out["gate"] = {}
        for share in GATE_SHARES:
            far = d["own"] > gate.limit_for(d["val"], s_val, share)
            out["gate"][f"{share:g}"] = {
                **held_out_figures(y_own, c["own"], c["test_reals"], fake & ~far,
                                   unsure | (fake & far)),
                "unfamiliar": float(far.mean())}
        if "agreement" in out:  # both, the gate at its shipped share: what the service says
            far = d["own"] > gate.limit_for(d["val"], s_val, gate.GATED_SHARE)
            kept = fake & ~far & confirmed
            # the gate holds back every verdict of an unfamiliar face: REAL too
            out["served"] = held_out_figures(y_own, c["own"], c["test_reals"], kept,
                                             unsure | (fake & ~kept) | far)
            # as served before 2026-11-30: the gate held back FAKE only
            out["served_gate_on_fake_only"] = held_out_figures(
                y_own, c["own"], c["test_reals"], kept, unsure | (fake & ~kept))
    return out


def sweep_val_rate(cache: Cache, names: list[str], runs: Runs, sources: list[str],
                   rates=(0.025, 0.02, 0.015, 0.01)) -> dict:
    """Each held-out source's reals called fake and fakes caught (without / with the gate at
    its shipped share) if the threshold rule allowed each val rate instead of `VAL_FPR`: how
    strict the rule must be for sources the detectors never saw."""
    out = {}
    for rate in rates:
        out[rate] = {}
        for s in sources:
            idx = faces(cache, s)
            lo = {n: member_logits(cache, n, s, runs) for n in names}
            y_val, s_val = cache.labels[idx["val"]], cache.sources[idx["val"]]
            y_own = cache.labels[idx["own"]]
            z = {k: np.stack([lo[n][k] for n in names], 1) for k in ("val", "own")}
            f, _ = combine(z["val"], y_val)
            t, _ = metrics.threshold_per_real_source(
                y_val, preprocess.sigmoid(f(z["val"])), s_val, rate)
            fake = preprocess.sigmoid(f(z["own"])) >= t
            row = {}
            if gate.MEMBER in names:
                d = gate_distances(cache, s, runs)
                gated = fake & ~(d["own"] > gate.limit_for(d["val"], s_val, gate.GATED_SHARE))
            else:
                gated = fake
            for label, key in ((0, "reals_called_fake"), (1, "fakes_caught")):
                if (y_own == label).any():
                    row[key] = [float(fake[y_own == label].mean()),
                                float(gated[y_own == label].mean())]
            out[rate][s] = row
        print(rate, json.dumps(metrics.rounded(out[rate], 4)), flush=True)
    return out


def grids(cache: Cache, names: list[str], held_out: str, runs: Runs, n: int = 24) -> list:
    """Two pictures of the held-out source's real faces (aligned, as scored): the ``n`` the
    ensemble of the runs without it scores most fake, and the ``n`` it scores most real."""
    import cv2

    idx = faces(cache, held_out)
    lo = {m: member_logits(cache, m, held_out, runs) for m in names}
    z = {k: np.stack([lo[m][k] for m in names], 1) for k in ("val", "own")}
    f, _ = combine(z["val"], cache.labels[idx["val"]])
    reals = cache.labels[idx["own"]] == 0
    rows, scores = idx["own"][reals], f(z["own"])[reals]
    order = np.argsort(-scores)
    written = []
    for tag, pick in (("most_fake", order[:n]), ("most_real", order[::-1][:n])):
        tiles = [np.asarray(cache.serve[rows[i]]) for i in pick]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 8)
        path = runs.out / f"{held_out}_reals_{tag}.png"
        cv2.imwrite(str(path), np.vstack([np.hstack(tiles[r:r + 8])
                                          for r in range(0, len(tiles), 8)]))
        written.append(path)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--members", nargs="+", default=["resnet", "mobilenet"])
    ap.add_argument("--sources", nargs="*", default=SOURCES)
    ap.add_argument("--grid", metavar="SOURCE",
                    help="only write pictures of SOURCE's real faces that the runs without it "
                    "score most fake and most real (into runs/loso_ensemble)")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=DIR",
                    help="use this run of member NAME (e.g. a seed trial, trained without the one "
                    "source in --sources); DIR+DIR...: the mean logit of several (the gate: the "
                    "first's); into runs/loso_ensemble_trials/")
    ap.add_argument("--sweep-val-rate", action="store_true",
                    help="only print each held-out source's figures under stricter threshold "
                    "rules (reals called fake and fakes caught, without / with the gate)")
    ap.add_argument("--balance-groups", type=int, default=None, metavar="K",
                    help="the mobilenet's runs with balanced draws (`loso --balance-groups K`; "
                    "default: as the shipped mobilenet was trained)")
    ap.add_argument("--gate-features", choices=("head", "imagenet"), default="head",
                    help="the familiarity gate on the mobilenet run's head features (as shipped) "
                    "or on the frozen ImageNet features (`imagenet_gate_distances`; into "
                    "runs/loso_ensemble..._gate-imagenet)")
    a = ap.parse_args(argv)
    if a.balance_groups is None:
        from model_export.evaluate import shipped_balance_groups

        a.balance_groups = shipped_balance_groups()
    cache = Cache(common.SPEC)
    override = dict(kv.split("=", 1) for kv in a.run)
    if override and len(a.sources) != 1:
        ap.error("--run needs exactly one source in --sources (the one that run was trained "
                 "without)")
    runs = Runs(a.balance_groups, override, a.gate_features)
    if a.grid:
        print(*grids(cache, a.members, a.grid, runs), sep="\n")
        return
    if a.sweep_val_rate:
        sweep_val_rate(cache, a.members, runs, a.sources)
        return
    t0 = time.time()
    methods = {n: runs.method(n) for n in a.members}
    out = {"method": f"{'+'.join(a.members)} ensemble of the leave-one-source-out runs "
           "(each member's run without the same source, as `loso` trained them), combined by "
           "evaluate's rule, threshold and band by the shipping rule on the val faces of the "
           "other sources; vgg16 has no such runs",
           "member_runs": methods,
           "command": ("python -m model_export.loso_ensemble "
           + " ".join(argv if argv else sys.argv[1:])).strip(), "sources": {}}
    for s in a.sources:
        out["sources"][s] = source_figures(cache, a.members, s, runs)
        print(s, json.dumps({k: v for k, v in out["sources"][s].items() if k != "members"}),
              flush=True)
    # the sources in the order of `data.SOURCES`, whatever order they were scored in
    out["sources"] = {s: out["sources"][s] for s in SOURCES if s in out["sources"]}
    out["seconds"] = round(time.time() - t0, 1)
    runs.out.mkdir(parents=True, exist_ok=True)
    (runs.out / "summary.json").write_text(json.dumps(metrics.rounded(out, 4), indent=2))


if __name__ == "__main__":
    main()

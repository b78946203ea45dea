"""Leave-one-source-out: for each source, train a short run without it and test on it.

    python -m model_export.loso [--name resnet --epochs 8 --epoch-samples 4096 --parallel 2]

Cheap by design (the CPU budget): the smaller/faster detector, fewer and shorter epochs than the
shipped runs, PyTorch FP32 scoring with the service's views. The held-out source never took part
in training or validation, so *all* its judged faces (every split) are scored:

* its reals: the share called fake at the threshold that the shipping rule
  (`evaluate.choose_threshold`) picks for this run on the val faces of the other sources
  (target: at most 5 %);
* its fakes: ROC AUC against the ``test`` reals of the other sources (target: at least 0.80), and
  the share caught at that threshold; for a source with both classes also the AUC against its
  own (equally unseen) reals, which separates "fakes of a new kind" from "a new kind of photo".

Writes ``model_export/runs/loso/summary.json``, which `evaluate` copies into the cards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model_export import common, metrics
from model_export.data import SOURCES, Cache
from model_export.train import predict_views
from service.detection import preprocess


def loso_dir(name: str, balance_groups: int = 0) -> Path:
    """Where the runs of ``name`` live: ``runs/loso`` for the resnet (the detectors' proxy),
    ``runs/loso_<name>`` for others; ``..._balance<K>`` for runs with ``--balance-groups K``."""
    base = "loso" if name == "resnet" else f"loso_{name}"
    return common.RUNS_DIR / (base + (f"_balance{balance_groups}" if balance_groups else ""))


def faces(cache: Cache, held_out: str) -> dict[str, np.ndarray]:
    """The cache rows a run without ``held_out`` is scored on: val of the other sources (for its
    threshold), every judged face of the held-out source, the test reals of the other sources."""
    te = cache.index("test", exclude_source=held_out)
    return {"val": cache.index("val", exclude_source=held_out),
            "own": np.concatenate([cache.index(s, only_source=held_out)
                                   for s in ("train", "val", "test")]),
            "test_reals": te[cache.labels[te] == 0]}


def run_logits(cache: Cache, name: str, run: Path, held_out: str) -> dict[str, np.ndarray]:
    """The run's logit (mean over the service's views) of each face in `faces`, kept in
    ``RUN/logits.npz`` (scoring is the slow part; `loso_ensemble` reads the same file)."""
    path, best = run / "logits.npz", run / "best.pt"
    if path.exists() and (not best.exists() or path.stat().st_mtime >= best.stat().st_mtime):
        return dict(np.load(path))  # no best.pt: a run scored where it trained (`gpu_batch`)
    torch.set_num_threads(1)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    from model_export.evaluate import load_checkpoint

    args = json.loads((run / "args.json").read_text()) if (run / "args.json").exists() else {}
    model = load_checkpoint(name, run)
    serve = cache.serve
    if args.get("mask_mouth"):  # a run trained without the mouth is scored without it too
        from model_export.augment import mask_mouth

        class Masked:
            def __getitem__(self, idx):
                return mask_mouth(np.asarray(cache.serve[idx]))

        serve = Masked()
    out = {k: predict_views(model, serve[idx], spec) for k, idx in faces(cache, held_out).items()}
    np.savez(path, **out)
    return out


def score(name: str, run: Path, held_out: str) -> dict:
    from model_export.evaluate import choose_threshold

    cache = Cache(common.SPEC)
    idx = faces(cache, held_out)
    lo = run_logits(cache, name, run, held_out)
    va = idx["val"]
    t, band = choose_threshold(cache.labels[va], preprocess.sigmoid(lo["val"]), cache.sources[va])
    out = {"threshold": t, "uncertain_band": band}
    y_own = cache.labels[idx["own"]]
    p = preprocess.sigmoid(lo["own"])
    out.update(held_out_figures(y_own, lo["own"], lo["test_reals"], p >= t,
                                (p >= band[0]) & (p < t)))
    summ = json.loads((run / "summary.json").read_text())
    out.update({"best_epoch": summ["best_epoch"], "epochs_run": summ["epoch"],
                "train_seconds": round(summ["seconds"], 1)})
    return out


def held_out_figures(y_own, own, te_reals, fake, unsure) -> dict:
    """The held-out source's figures (the module's docstring) from its faces' labels ``y_own``,
    their scores ``own`` and verdicts (``fake``, ``unsure``: boolean), and the seen test reals'
    scores ``te_reals`` (needed only when it has fakes)."""
    out = {}
    real = ~fake & ~unsure
    if (y_own == 0).any():
        out["reals_called_fake"] = float(fake[y_own == 0].mean())
        out["reals_uncertain"] = float(unsure[y_own == 0].mean())
        out["reals_called_real"] = float(real[y_own == 0].mean())
        out["reals_n"] = int((y_own == 0).sum())
    if (y_own == 1).any():
        lf = own[y_own == 1]
        out["fakes_auc_vs_seen_test_reals"] = metrics.roc_auc(
            np.r_[np.zeros(len(te_reals)), np.ones(len(lf))], np.r_[te_reals, lf])
        out["fakes_caught"] = float(fake[y_own == 1].mean())
        out["fakes_called_real"] = float(real[y_own == 1].mean())
        out["fakes_n"] = int(len(lf))
        if (y_own == 0).any():
            out["fakes_auc_vs_own_reals"] = metrics.roc_auc(y_own, own)
    return out


def sweep_val_rate(name: str, held_out: str, rates=(0.025, 0.02, 0.015, 0.01, 0.005)) -> dict:
    """A held-out real source's share called fake if the threshold rule allowed each val rate
    instead of `evaluate.VAL_FPR` (a stricter rule as the remedy for unseen real sources?)."""
    torch.set_num_threads(1)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    cache = Cache(common.SPEC)
    model = common.build_named(name)
    model.load_state_dict(torch.load(loso_dir(name) / held_out / "best.pt",
                                     weights_only=False)["model"])
    va = cache.index("val", exclude_source=held_out)
    own = np.concatenate([cache.index(s, only_source=held_out) for s in ("train", "val", "test")])
    own = own[cache.labels[own] == 0]
    pv = preprocess.sigmoid(predict_views(model, cache.serve[va], spec))
    po = preprocess.sigmoid(predict_views(model, cache.serve[own], spec))
    out = {}
    for r in rates:
        t, _ = metrics.threshold_per_real_source(cache.labels[va], pv, cache.sources[va], r)
        out[r] = round(float((po >= t).mean()), 4)
    return out


def compare_runs(name: str, runs: list[Path], held_out: str, limit: int = 2000) -> dict:
    """Held-out ``held_out`` figures of several runs trained without it (recipe trials), on one
    fixed subsample of its faces (at most ``limit`` per class, every split) and the same seen
    test reals: fakes' AUC against its own reals and against the seen test reals."""
    torch.set_num_threads(1)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    cache = Cache(common.SPEC)
    own = np.concatenate([cache.index(s, only_source=held_out) for s in ("train", "val", "test")])
    pick = np.concatenate([own[cache.labels[own] == c][:: max(1, (cache.labels[own] == c).sum()
                                                                // limit)][:limit]
                           for c in (0, 1) if (cache.labels[own] == c).any()])
    te = cache.index("test", exclude_source=held_out)
    te_reals = te[cache.labels[te] == 0]
    out = {}
    for run in runs:
        model = common.build_named(name)
        model.load_state_dict(torch.load(Path(run) / "best.pt", weights_only=False)["model"])
        lo = predict_views(model, cache.serve[pick], spec)
        lr = predict_views(model, cache.serve[te_reals], spec)
        y = cache.labels[pick]
        lf = lo[y == 1]
        res = {"faces": int(len(pick)), "fakes_auc_vs_seen_test_reals": metrics.roc_auc(
            np.r_[np.zeros(len(lr)), np.ones(len(lf))], np.r_[lr, lf])}
        if (y == 0).any() and (y == 1).any():
            res["fakes_auc_vs_own_reals"] = metrics.roc_auc(y, lo)
        out[str(run)] = {k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}
        print(run, out[str(run)], flush=True)
    return out


RECIPE = ("epochs", "epoch_samples", "sbi", "pair", "val_limit", "balance_groups")


def finished_runs(root: Path, a: argparse.Namespace) -> list[str]:
    """Every source with a finished run of this recipe under ``root``, not only ``--sources``:
    the summary is what the cards show, and a run of some sources must not drop the others'.
    A finished run of another recipe is left out, with a warning."""
    done = []
    for s in SOURCES:
        run = root / s
        if not (run / "summary.json").exists():
            continue
        args = json.loads((run / "args.json").read_text())
        other = {k: (args.get(k), getattr(a, k)) for k in RECIPE
                 if (args.get(k) or 0) != (getattr(a, k) or 0)}
        if other:
            print(f"{run}: another recipe {other}; left out of the summary", file=sys.stderr)
            continue
        done.append(s)
    return done


def recipe_args(argv: list[str]) -> list[str]:
    """The command line without ``--sources`` and ``--parallel``: the recipe every run shares."""
    out, skip = [], False
    for arg in argv:
        if arg.startswith("--"):
            skip = arg in ("--sources", "--parallel")
        if not skip:
            out.append(arg)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--name", default="resnet", choices=list(common.ALL_ARCHS))
    ap.add_argument("--compare", nargs="+", type=Path, metavar="RUN",
                    help="only compare these runs (trained without --held-out) on its faces")
    ap.add_argument("--held-out", help="the source the --compare or --score runs were trained "
                    "without")
    ap.add_argument("--score", type=Path, metavar="RUN",
                    help="only score this run (trained without --held-out, e.g. a longer recipe) "
                    "as the LOSO runs are scored; writes RUN/loso_score.json")
    ap.add_argument("--sweep-val-rate", metavar="SOURCE",
                    help="only print SOURCE's reals called fake (its finished run) at stricter "
                    "threshold rules")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--epoch-samples", type=int, default=4096)
    ap.add_argument("--sbi", type=float, default=0.0)
    ap.add_argument("--pair", action="store_true")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--val-limit", type=int, default=1200)
    ap.add_argument("--sources", nargs="*", default=SOURCES)
    ap.add_argument("--balance-groups", type=int, default=0, metavar="K",
                    help="train with `train --balance-groups K` (runs in runs/loso_NAME_balanceK)")
    a = ap.parse_args(argv)
    if a.compare:
        compare_runs(a.name, a.compare, a.held_out)
        return
    if a.score:
        out = metrics.rounded(score(a.name, a.score, a.held_out), 4)
        (a.score / "loso_score.json").write_text(json.dumps(out, indent=2))
        print(json.dumps(out))
        return
    if a.sweep_val_rate:
        print(a.sweep_val_rate, sweep_val_rate(a.name, a.sweep_val_rate))
        return
    root = loso_dir(a.name, a.balance_groups)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pending = list(a.sources)
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < a.parallel:
            s = pending.pop(0)
            run = root / s
            cmd = [
                sys.executable,
                "-m",
                "model_export.train",
                "--name",
                a.name,
                "--out",
                str(run),
                "--epochs",
                str(a.epochs),
                "--epoch-samples",
                str(a.epoch_samples),
                "--sbi",
                str(a.sbi),
                "--exclude-source",
                s,
                "--patience",
                "99",
                "--resume",
            ]
            cmd += ["--pair"] if a.pair else []
            cmd += ["--val-limit", str(a.val_limit)]
            cmd += ["--balance-groups", str(a.balance_groups)] if a.balance_groups else []
            if (run / "summary.json").exists():
                continue
            log = open(root / f"{s}.log", "a")
            running.append((s, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        for s, p in list(running):
            if p.poll() is not None:
                running.remove((s, p))
                if p.returncode:
                    raise SystemExit(f"LOSO run for {s} failed: see {root / s}.log")
        time.sleep(2)
    balanced = f", lower-face groups balanced: {a.balance_groups}" if a.balance_groups else ""
    done = finished_runs(root, a)
    out = {
        "method": f"{a.name} trained {a.epochs} x {a.epoch_samples} draws without the source "
        f"(sbi {a.sbi}, pairing {a.pair}{balanced}; far shorter than the shipped run: a lower bound), "
        f"best of the epochs on {a.val_limit} val faces of the other sources, FP32 with the "
        "service's 3 views, scored on all that source's judged faces (every split)",
        "command": "python -m model_export.loso " + " ".join(
            recipe_args(argv if argv is not None else sys.argv[1:])),
        "wall_seconds": round(time.time() - t0, 1),
        "sources": {s: score(a.name, root / s, s) for s in done},
    }
    out = metrics.rounded(out, 4)
    (root / "summary.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({s: {k: v.get(k) for k in ("reals_called_fake", "fakes_auc_vs_seen_test_reals")}
                      for s, v in out["sources"].items()}))


if __name__ == "__main__":
    main()

"""Export a trained checkpoint, score it the way the service does, and write its model card.

    python -m model_export.evaluate --name resnet --run model_export/runs/resnet
    python -m model_export.evaluate --ensemble [--members vgg16 resnet mobilenet]

Per member: FP32 ONNX (dynamic batch) checked against PyTorch on random and real inputs; static
INT8 QDQ calibrated on training-face views; every figure below is measured with the INT8 file
(what the service runs on the CPU) unless named ``fp32``:

* per-face logit = mean of the views' logits (`preprocess.combine_view_logits`), P(fake) = sigmoid;
* threshold: the smallest P(fake) at which at most 2 % of the ``val`` reals of *every* real
  source are called fake (well under the 5 % target: a margin for real photos from sources the
  detectors never saw, which the leave-one-source-out runs show fare worse than val; 2 % is the
  loosest rule at which the leave-one-source-out ensemble, with the gate, calls at most 5 % of
  every held-out real source fake: `loso_ensemble --sweep-val-rate`), rounded up so that the
  shipped number keeps the rule; uncertain band: from the lowest P(fake) where
  the class-balanced P(fake | score) on ``val`` (isotonic fit) passes ``BAND_POSTERIOR`` up to
  the threshold: below it the answer is REAL, inside it the detectors cannot tell;
* ``test``: accuracy/precision/recall/F1/FPR/confusion at the threshold and ROC AUC, overall and
  per source (a one-class source is ranked against the other class of all test sources);
* robustness: test AUC after JPEG q50/q75, half downscale and screenshot-like re-encoding of the
  whole image (`model_export.robust`), as a change from the clean AUC;
* leave-one-source-out figures from `model_export.loso` when present;
* the ensemble: the members' logits combined, its own threshold and band, then the view cascade
  (`model_export.cascade`, from the per-view scores saved with each member): ``metrics.test`` is
  what the service answers with it, ``metrics.test_all_views`` the ensemble on every view.

Models in ``models/`` are replaced only when the new one has a higher val AUC than a trained one
already there (or ``--force``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from model_export import cascade as cascade_mod
from model_export import common, export, metrics, plots
from model_export import robust as robust_mod
from model_export.data import Cache
from service.detection import preprocess

# TARGET_FPR is the bound on any real source; the threshold is chosen at VAL_FPR on val,
# well under it, because unseen real sources are called fake more often than val's (LOSO figures:
# 2.5 % left 5.5 % of the held-out Unsplash portraits called fake with the gate, 2 % 4.8 %)
TARGET_FPR, VAL_FPR, BAND_POSTERIOR = 0.05, 0.02, 0.25


def views_of(faces: np.ndarray, spec) -> np.ndarray:
    """(n, k, S, S, 3) service views of cached ``face_size`` faces (`face_views` on each face)."""
    return np.stack([preprocess.face_views(np.asarray(f), spec) for f in faces])


def score_onnx_views(sess, faces: np.ndarray, spec, chunk: int = 256) -> np.ndarray:
    """(n, views) logits of each face's views."""
    out = []
    for i in range(0, len(faces), chunk):
        v = views_of(faces[i : i + chunk], spec)
        n, k = v.shape[:2]
        lo, _ = export.run_onnx(sess, preprocess.to_input(v.reshape(n * k, *v.shape[2:]), spec))
        out.append(lo.reshape(n, k))
    return np.concatenate(out)


def score_onnx(sess, faces: np.ndarray, spec, chunk: int = 256) -> np.ndarray:
    """(n,) per-face logits: the mean of the views' logits."""
    return preprocess.combine_view_logits(score_onnx_views(sess, faces, spec, chunk))


THRESHOLD_RULE = (
    f"threshold: smallest P(fake) with <= {VAL_FPR:.1%} of the val reals of every real source at "
    f"or above it (under the {TARGET_FPR:.0%} target: a margin for unseen real sources), rounded "
    f"up to 4 decimals; uncertain band: [lowest P(fake) where the class-balanced P(fake | score) on val "
    f"exceeds {BAND_POSTERIOR}, threshold)"
)


def choose_threshold(y_val, p_val, s_val) -> tuple[float, list[float]]:
    t, _ = metrics.threshold_per_real_source(y_val, p_val, s_val, VAL_FPR)
    t = math.ceil(t * 1e4) / 1e4  # the cards keep 4 decimals: rounding down could break the rule
    lo = math.floor(metrics.band_low(y_val, p_val, BAND_POSTERIOR) * 1e4) / 1e4
    return t, [min(lo, t), t]


def called_fake_by_real_source(y, p, sources, t) -> dict:
    """Share of each real source's faces called fake (``p >= t``)."""
    out = {}
    for s in sorted(np.unique(sources[y == 0])):
        m = (sources == s) & (y == 0)
        out[str(s)] = {"called_fake": float((p[m] >= t).mean()), "n": int(m.sum())}
    return out


def full_metrics(y, logit, sources, t, band) -> dict:
    p = preprocess.sigmoid(logit)
    m = {"auc": metrics.roc_auc(y, logit), **metrics.at_threshold(y, p, t)}
    m["uncertain_fraction"] = float(((p >= band[0]) & (p < band[1])).mean())
    m["real_sources_called_fake"] = called_fake_by_real_source(y, p, sources, t)
    m["verdicts_per_source"] = verdict_shares(y, p, sources, t, band)
    per = {}
    for s in sorted(np.unique(sources)):
        k = metrics.source_mask(y, sources, s)
        own = sources == s
        per[str(s)] = {
            "auc": metrics.roc_auc(y[k], logit[k]),
            "n_own": int(own.sum()),
            "classes": sorted({"real" if v == 0 else "fake" for v in y[own]}),
            **metrics.at_threshold(y[own], p[own], t),
        }
        if len(per[str(s)]["classes"]) == 1:  # precision/recall/F1 need both classes: use k
            both = metrics.at_threshold(y[k], p[k], t)
            per[str(s)].update(
                {f"vs_other_class_{q}": both[q] for q in ("precision", "recall", "f1", "accuracy")}
            )
    m["per_source"] = per
    return m


def verdict_shares(y, p, sources, t, band) -> dict:
    """Per source and class: the shares of REAL / UNSURE / FAKE verdicts."""
    out = {}
    for s in sorted(np.unique(sources)):
        for lab, name in ((0, "real"), (1, "fake")):
            m = (sources == s) & (y == lab)
            if m.any():
                q = p[m]
                out[f"{s}/{name}"] = {
                    "n": int(m.sum()),
                    "real": float((q < band[0]).mean()),
                    "uncertain": float(((q >= band[0]) & (q < t)).mean()),
                    "fake": float((q >= t).mean()),
                }
    return out


def calibration_inputs(cache: Cache, spec, n_faces: int = 192, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tr = cache.index("train")
    pick = np.concatenate(
        [rng.choice(tr[cache.labels[tr] == c], n_faces // 2, replace=False) for c in (0, 1)]
    )
    v = views_of(cache.serve[np.sort(pick)], spec)
    return preprocess.to_input(v.reshape(-1, *v.shape[2:]), spec)


def load_checkpoint(name: str, run: Path) -> torch.nn.Module:
    """The run's best epoch, at the width it trained with (`train --width`)."""
    args = Path(run) / "args.json"
    width = json.loads(args.read_text()).get("width") if args.exists() else None
    model = common.build_named(name, width=width)
    ck = torch.load(Path(run) / "best.pt", weights_only=False)
    model.load_state_dict(ck["model"])
    return model.eval()


def _existing_val_auc(path: Path):
    if not path.exists():
        return None
    card = json.loads(path.read_text())
    if not card.get("trained"):
        return None
    return card.get("metrics", {}).get("val", {}).get("auc")


def robust_scores(sess, spec) -> dict | None:
    """Logits of the changed copies (``model_export.robust``) and of their originals."""
    path = robust_mod.robust_path(common.SPEC)
    if not path.exists():
        return None
    r = np.load(path)
    crops = r["crops"]
    n, c = crops.shape[:2]
    views = score_onnx_views(sess, crops.reshape(n * c, *crops.shape[2:]), spec)
    views = views.reshape(n, c, -1)
    cache = Cache(common.SPEC)
    orig = score_onnx_views(sess, cache.serve[r["index"]], spec)
    return {"index": r["index"], "found": r["found"],
            "logits": preprocess.combine_view_logits(views),
            "orig": preprocess.combine_view_logits(orig), "views": views, "orig_views": orig,
            "conditions": [str(x) for x in r["conditions"]]}


def invariance(cache: Cache, rob: dict, t: float, band) -> dict:
    """Per condition: faces still found, |change of P(fake)| (median, p95, max), reals called
    fake (before -> after), fakes still called fake, AUC on the changed copies."""
    idx, found = rob["index"], rob["found"]
    y = cache.labels[idx]
    p0 = preprocess.sigmoid(rob["orig"])
    out = {}
    for j, c in enumerate(rob["conditions"]):
        f = found[:, j]
        p1 = preprocess.sigmoid(rob["logits"][:, j])
        d = np.abs(p1 - p0)[f]
        reals, fakes = f & (y == 0), f & (y == 1)
        out[c] = {
            "faces_found": float(f.mean()),
            "abs_delta_p_median": float(np.median(d)) if len(d) else None,
            "abs_delta_p_p95": float(np.percentile(d, 95)) if len(d) else None,
            "abs_delta_p_max": float(d.max()) if len(d) else None,
            "reals_called_fake_before": float((p0[reals] >= t).mean()),
            "reals_called_fake_after": float((p1[reals] >= t).mean()),
            "reals_turned_fake": int(((p0 < t) & (p1 >= t))[reals].sum()),
            "fakes_called_fake_before": float((p0[fakes] >= t).mean()),
            "fakes_called_fake_after": float((p1[fakes] >= t).mean()),
            "auc": metrics.roc_auc(y[f], rob["logits"][f, j]),
            "auc_original": metrics.roc_auc(y[f], rob["orig"][f]),
            "n": int(f.sum()),
            "n_reals": int(reals.sum()),
        }
    return out


def _subsample(idx: np.ndarray, limit: int | None) -> np.ndarray:
    return idx if not limit else idx[:: max(1, len(idx) // limit)]


def member_threshold_metrics(cache: Cache, val, test, lt32, rob):
    """Everything in a member's card that depends on its threshold, from its scores:
    (threshold, band, test metrics, val metrics, INT8/FP32 decision agreement)."""
    (y_va, lv, s_va), (y_te, lt, s_te) = val, test
    t, band = choose_threshold(y_va, preprocess.sigmoid(lv), s_va)
    m_test = full_metrics(y_te, lt, s_te, t, band)
    if rob is not None:
        m_test["invariance"] = invariance(cache, rob, t, band)
    m_val = {
        "auc": metrics.roc_auc(y_va, lv),
        "per_source_auc": metrics.per_source_auc(y_va, lv, s_va),
        **metrics.at_threshold(y_va, preprocess.sigmoid(lv), t),
    }
    p8, p32 = preprocess.sigmoid(lt), preprocess.sigmoid(lt32)
    return t, band, m_test, m_val, float(((p8 >= t) == (p32 >= t)).mean())


def scores_path(name: str, out: Path, write: bool = False) -> Path:
    """Where a member's saved scores live: ``runs/scores_NAME.npz`` for the shipped ``models/``,
    beside the files for any other ``--out`` (a trial never overwrites the shipped scores; one
    that re-evaluated only some members reads the others' shipped scores)."""
    shipped = common.RUNS_DIR / f"scores_{name}.npz"
    if Path(out).resolve() == common.MODELS_DIR.resolve():
        return shipped
    own = Path(out) / f"scores_{name}.npz"
    return own if write or own.exists() else shipped


def rethreshold_member(name: str, out: Path) -> None:
    """Re-apply the threshold rule to a shipped member from its saved scores
    (``runs/scores_NAME.npz``, written with the shipped files), without re-exporting it."""
    cache = Cache(common.SPEC)
    va, te = cache.index("val"), cache.index("test")
    sc = np.load(scores_path(name, out))
    card_path = out / f"{name}.card.json"
    card = json.loads(card_path.read_text())
    auc = round(metrics.roc_auc(cache.labels[va], sc["val"]), 4)
    if auc != card["metrics"]["val"]["auc"]:
        raise SystemExit(f"{name}: saved scores (val AUC {auc}) are not the shipped model's")
    rob = None
    if "robust" in sc.files:
        r = np.load(robust_mod.robust_path(common.SPEC))
        rob = {"index": r["index"], "found": r["found"], "logits": sc["robust"],
               "orig": sc["robust_orig"], "conditions": [str(x) for x in r["conditions"]]}
    y_va, y_te, s_va, s_te = cache.labels[va], cache.labels[te], cache.sources[va], cache.sources[te]
    t, band, m_test, m_val, agree = member_threshold_metrics(
        cache, (y_va, sc["val"], s_va), (y_te, sc["test"], s_te), sc["test_fp32"], rob)
    card.update({"threshold": t, "uncertain_band": band, "threshold_rule": THRESHOLD_RULE})
    card["metrics"]["test"], card["metrics"]["val"] = m_test, m_val
    card["metrics"]["export"]["int8_vs_fp32_test_decision_agreement"] = agree
    common.write_json(card_path, metrics.rounded(card, 4))
    _plots(name, out, y_te, sc["test"], s_te, m_test["confusion"], name)
    print(f"{name}: threshold {t}, band {band}")


def add_view_scores(name: str, out: Path) -> None:
    """Save each view's logit beside a shipped member's saved scores (``runs/scores_NAME.npz``,
    keys ``*_views``), from its INT8 file; the ensemble's view cascade is chosen from them.
    Refused if their means are not the saved scores (another model's)."""
    path = scores_path(name, out)
    sc = dict(np.load(path))
    if "val_views" in sc:
        return
    card = json.loads((out / f"{name}.card.json").read_text())
    spec = preprocess.InputSpec.from_card(card)
    sess = export.session(out / card["files"]["cpu"], 2)
    cache = Cache(common.SPEC)
    views = {"val_views": score_onnx_views(sess, cache.serve[cache.index("val")], spec),
             "test_views": score_onnx_views(sess, cache.serve[cache.index("test")], spec)}
    rob = robust_scores(sess, spec) if "robust" in sc else None
    if rob is not None:
        views.update(robust_views=rob["views"], robust_orig_views=rob["orig_views"])
    for key, v in views.items():
        saved = sc[key.removesuffix("_views")]
        if not np.allclose(preprocess.combine_view_logits(v), saved, atol=1e-5):
            raise SystemExit(f"{name}: {out} holds another model than runs/scores_{name}.npz")
    np.savez(scores_path(name, out, write=True), **sc, **views)
    print(f"{name}: per-view scores saved")


def evaluate_member(
    name: str, run: Path, out: Path, force: bool = False, limit: int | None = None
) -> dict:
    torch.set_num_threads(2)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    cache = Cache(common.SPEC)
    model = load_checkpoint(name, run)
    summary = json.loads((Path(run) / "summary.json").read_text())
    va, te = cache.index("val"), cache.index("test")
    va, te = _subsample(va, limit), _subsample(te, limit)
    y_va, y_te = cache.labels[va], cache.labels[te]
    s_va, s_te = cache.sources[va], cache.sources[te]
    stage = Path(tempfile.mkdtemp(prefix=f"{name}_", dir=common.RUNS_DIR))
    fp32 = export.export_fp32(model, stage / f"{name}.fp32.onnx", spec.input_size)
    rng = np.random.default_rng(1)
    rand = rng.normal(0, 1, (8, 3, spec.input_size, spec.input_size)).astype(np.float32)
    real_v = views_of(cache.serve[va[:: max(1, len(va) // 8)][:8]], spec)
    real = preprocess.to_input(real_v.reshape(-1, *real_v.shape[2:]), spec)
    err_rand = export.check_agreement(model, fp32, rand)
    err_real = export.check_agreement(model, fp32, real)
    int8 = export.quantize_int8(fp32, stage / f"{name}.int8.onnx", calibration_inputs(cache, spec))
    s8, s32 = export.session(int8, 2), export.session(fp32, 2)

    lv_views = score_onnx_views(s8, cache.serve[va], spec)
    lt_views = score_onnx_views(s8, cache.serve[te], spec)
    lv, lt = preprocess.combine_view_logits(lv_views), preprocess.combine_view_logits(lt_views)
    lt32 = score_onnx(s32, cache.serve[te], spec)
    rob = robust_scores(s8, spec)
    t, band, m_test, m_val, agree = member_threshold_metrics(
        cache, (y_va, lv, s_va), (y_te, lt, s_te), lt32, rob)
    q = {
        "max_abs_err_fp32_onnx_vs_torch_random": err_rand,
        "max_abs_err_fp32_onnx_vs_torch_real": err_real,
        "int8_vs_fp32_test_logit_corr": float(np.corrcoef(lt, lt32)[0, 1]),
        "int8_vs_fp32_test_decision_agreement": agree,
        "fp32_test_auc": metrics.roc_auc(y_te, lt32),
    }
    card = common.base_card(name, model, trained=True, command="",
                            width=summary.get("args", {}).get("width"))
    card.update(
        {
            "threshold": t,
            "uncertain_band": band,
            "threshold_rule": THRESHOLD_RULE,
            "metrics_model": "INT8 (files.cpu), views combined by mean logit",
            "training": {
                k: summary["args"][k]
                for k in ("epochs", "epoch_samples", "batch", "lr", "wd", "sbi", "seed")
            },
            "training_best_epoch": summary["best_epoch"],
            "training_epochs_run": summary["epoch"],
            "training_cpu_seconds": round(summary["seconds"], 1),
            "training_history": summary["history"],
            "command": "python -m model_export.reproduce",
            "train_command": summary["command"],
        }
    )
    tuned = summary["args"].get("tune_blocks", 0)
    if tuned:  # the mobilenet with its last backbone blocks trained too
        card["architecture"] = common.arch_description(name, tuned)
        card["training"].update(tune_blocks=tuned, backbone_lr=summary["args"]["backbone_lr"])
    groups = summary["args"].get("balance_groups", 0)
    if groups:  # draws balanced over lower-face groups (`model_export.balance`)
        card["training"].update(balance_groups=groups,
                                balance_region=summary["args"]["balance_region"])
    card["metrics"] = {"test": m_test, "val": m_val, "export": q}
    loso = loso_runs(card) / "summary.json"
    if loso.exists():
        card["metrics"]["leave_one_source_out"] = json.loads(loso.read_text())
    ab = common.RUNS_DIR / "ab_summary.json"
    if ab.exists():
        card["metrics"]["self_blended_ab"] = json.loads(ab.read_text())
    card = metrics.rounded(card, 4)
    if _ship(name, stage, card, out, y_te, lt, s_te, m_test, force):
        np.savez(
            scores_path(name, out, write=True),
            val=lv,
            test=lt,
            test_fp32=lt32,
            val_views=lv_views,
            test_views=lt_views,
            **({"robust": rob["logits"], "robust_orig": rob["orig"], "robust_views": rob["views"],
                "robust_orig_views": rob["orig_views"]} if rob else {}),
        )
    return card


def loso_runs(card: dict) -> Path:
    """The leave-one-source-out runs that stand for a member: the resnet recipe's for the two
    from-scratch members, the mobilenet's own (with balanced draws when it was so trained)."""
    from model_export.loso import loso_dir

    if card["name"] != "mobilenet":
        return loso_dir("resnet")
    return loso_dir("mobilenet", card.get("training", {}).get("balance_groups", 0))


def _plots(name, out, y, logit, sources, conf, title):
    curves = {"all test": (y, logit)}
    for s in sorted(np.unique(sources)):
        k = metrics.source_mask(y, sources, s)
        curves[str(s)] = (y[k], logit[k])
    plots.roc_png(out / f"{name}.roc.png", curves, f"{title}: ROC on test")
    plots.confusion_png(out / f"{name}.confusion.png", conf, f"{title}: test at shipped threshold")


def _ship(name, stage, card, out, y_te, lt, s_te, m_test, force):
    out.mkdir(parents=True, exist_ok=True)
    old = _existing_val_auc(out / f"{name}.card.json")
    new = card["metrics"]["val"]["auc"]
    if old is not None and new <= old and not force:
        print(f"{name}: val AUC {new} not better than shipped {old}: models/ left unchanged")
        shutil.rmtree(stage, ignore_errors=True)
        return False
    for f in (f"{name}.fp32.onnx", f"{name}.int8.onnx"):
        shutil.copyfile(stage / f, out / f)
    common.write_json(out / f"{name}.card.json", card)
    _plots(name, out, y_te, lt, s_te, m_test["confusion"], name)
    shutil.rmtree(stage, ignore_errors=True)
    print(f"{name}: shipped (val AUC {new}, test AUC {card['metrics']['test']['auc']})")
    return True


def evaluate_ensemble(out: Path, members: list[str] | None = None) -> dict:
    cache = Cache(common.SPEC)
    va, te = cache.index("val"), cache.index("test")
    y_va, y_te, s_va, s_te = (
        cache.labels[va],
        cache.labels[te],
        cache.sources[va],
        cache.sources[te],
    )
    names = members or list(common.ARCHS)
    sc = {n: np.load(scores_path(n, out)) for n in names}
    cards = {n: json.loads((out / f"{n}.card.json").read_text()) for n in names}
    has_rob = "robust" in sc[names[0]].files

    def stack(key):
        return np.stack([sc[n][key] for n in names], axis=1)

    w, b = metrics.fit_logistic(stack("val"), y_va.astype(np.float64))
    cands = {
        "mean_logit": lambda z: z.mean(axis=1),
        "max_logit": lambda z: z.max(axis=1),
        "logistic_val_fit": lambda z: z @ w + b,
        **{f"only_{n}": (lambda z, i=i: z[:, i]) for i, n in enumerate(names)},
    }
    val_auc = {k: metrics.roc_auc(y_va, f(stack("val"))) for k, f in cands.items()}
    test_auc = {k: metrics.roc_auc(y_te, f(stack("test"))) for k, f in cands.items()}
    # the service applies "mean_logit" or {"weights", "bias"}: only those two can be shipped;
    # the others are reported for comparison
    best = max(("mean_logit", "logistic_val_fit"), key=lambda k: val_auc[k])
    # prefer the parameter-free mean unless a fitted combination is clearly better on val
    if best != "mean_logit" and val_auc[best] - val_auc["mean_logit"] < 0.005:
        best = "mean_logit"
    f = cands[best]
    lv, lt = f(stack("val")), f(stack("test"))
    t, band = choose_threshold(y_va, preprocess.sigmoid(lv), s_va)
    m_all = full_metrics(y_te, lt, s_te, t, band)
    # The view cascade (when the per-view scores were saved): the served figures are its own.
    cascade = None
    if all("val_views" in sc[n].files for n in names):
        def first(key):  # (..., members) the members' first-view logits
            return np.stack([sc[n][key][..., cascade_mod.FIRST_VIEW] for n in names], -1)

        costs = cascade_mod.row_costs([export.session(out / cards[n]["files"]["cpu"], 1)
                                       for n in names], common.SPEC["input_size"])
        cascade, candidates = cascade_mod.choose_stage(
            first("val_views"), lv, y_va, s_va, t, band, VAL_FPR, names, costs,
            len(common.SPEC["crops"]))
        cascade_fig = {"val": cascade_mod.figures(cascade, first("val_views"), lv, y_va),
                       "test": cascade_mod.figures(cascade, first("test_views"), lt, y_te)}
        lv = cascade_mod.served(cascade, first("val_views"), lv)
        lt = cascade_mod.served(cascade, first("test_views"), lt)
    m_test = full_metrics(y_te, lt, s_te, t, band) if cascade else m_all
    if has_rob:
        r = np.load(robust_mod.robust_path(common.SPEC))
        rl = np.stack([sc[n]["robust"] for n in names], axis=-1)  # (n, C, members)
        ro = np.stack([sc[n]["robust_orig"] for n in names], axis=1)
        logits = np.stack([f(rl[:, j]) for j in range(rl.shape[1])], 1)
        orig = f(ro)
        rob = {"index": r["index"], "found": r["found"], "orig": orig, "logits": logits,
               "conditions": [str(x) for x in r["conditions"]]}
        m_all["invariance"] = invariance(cache, rob, t, band)
        if cascade is not None and "robust_views" in sc[names[0]].files:
            fr, fo = first("robust_views"), first("robust_orig_views")
            found = r["found"]
            cascade_fig["changed_copies"] = cascade_mod.figures(cascade, fr[found], logits[found],
                                                                None)
            rob = {**rob, "orig": cascade_mod.served(cascade, fo, orig),
                   "logits": cascade_mod.served(cascade, fr, logits)}
            m_test["invariance"] = invariance(cache, rob, t, band)
        elif cascade is None:
            m_test["invariance"] = m_all["invariance"]
    combine = (
        best
        if best in ("mean_logit", "max_logit")
        else {"weights": {n: float(w[i]) for i, n in enumerate(names)}, "bias": b}
    )
    ens = {
        "members": names,
        "combine": combine,
        "combine_rule": "per face: each member's mean-over-views logit, then combined; "
        "P(fake) = sigmoid(combined)" + ("; with the cascade, a face far from every verdict "
                                         "boundary is judged on its first view by the "
                                         "cascade's first_members alone"
                                         if cascade else ""),
        **({"cascade": cascade_mod.card(cascade, names, cascade_fig, costs, candidates)}
           if cascade else {}),
        "threshold": t,
        "uncertain_band": band,
        "threshold_rule": THRESHOLD_RULE,
        "min_face": common.SPEC["min_face"],
        "trained": all(c.get("trained") for c in cards.values()),
        "metrics": {
            "test": m_test,
            **({"test_all_views": m_all} if cascade else {}),
            "val": {
                "auc": metrics.roc_auc(y_va, lv),
                "per_source_auc": metrics.per_source_auc(y_va, lv, s_va),
            },
            "combination_choice": {
                "rule": "mean_logit, unless the logistic fit on val (weights + bias) is >= 0.005 "
                "better in val AUC; max and single members reported for comparison",
                "val_auc": val_auc,
                "test_auc": test_auc,
            },
        },
        "command": "python -m model_export.reproduce",
    }
    ens = metrics.rounded(ens, 4)
    common.write_json(out / "ensemble.json", ens)
    _plots("ensemble", out, y_te, lt, s_te, m_test["confusion"], f"ensemble ({best})")
    np.savez(scores_path("ensemble", out, write=True), val=lv, test=lt)
    print(
        f"ensemble: {best}, val AUC {ens['metrics']['val']['auc']}, test AUC "
        f"{ens['metrics']['test']['auc']}"
    )
    return ens


def sweep_val_rate(out: Path, rates=(0.025, 0.02, 0.015, 0.01, 0.005)) -> None:
    """The shipped ensemble (every view, saved scores) if the threshold rule allowed each val
    rate instead of `VAL_FPR`: test reals called fake (all, worst source) and fakes caught."""
    ens = json.loads((out / "ensemble.json").read_text())
    names, comb = ens["members"], ens["combine"]
    cache = Cache(common.SPEC)
    va, te = cache.index("val"), cache.index("test")
    y_va, y_te, s_va, s_te = cache.labels[va], cache.labels[te], cache.sources[va], cache.sources[te]
    sc = {n: np.load(scores_path(n, out)) for n in names}
    w = np.array([comb["weights"][n] for n in names])
    pv = preprocess.sigmoid(np.stack([sc[n]["val"] for n in names], 1) @ w + comb["bias"])
    pt = preprocess.sigmoid(np.stack([sc[n]["test"] for n in names], 1) @ w + comb["bias"])
    for r in rates:
        t, _ = metrics.threshold_per_real_source(y_va, pv, s_va, r)
        worst = max(float((pt[(s_te == s) & (y_te == 0)] >= t).mean()) for s in set(s_te[y_te == 0]))
        print(f"val rate {r}: threshold {t:.4f}, test reals called fake "
              f"{(pt[y_te == 0] >= t).mean():.4f} (worst source {worst:.4f}), fakes caught "
              f"{(pt[y_te == 1] >= t).mean():.4f}")


def shipped_balance_groups(out: Path = common.MODELS_DIR) -> int:
    """``K`` when the shipped mobilenet was trained with balanced draws (`train --balance-groups
    K`), else 0: which leave-one-source-out runs stand for it."""
    card = out / "mobilenet.card.json"
    if not card.exists():
        return 0
    return json.loads(card.read_text()).get("training", {}).get("balance_groups", 0)


def attach_loso(out: Path) -> None:
    """Copy the leave-one-source-out summaries into the shipped cards (when LOSO finished after
    the members were evaluated): resnet's runs for the two from-scratch members, the mobilenet's
    own for it, and their combination (`loso_ensemble`) for the ensemble."""
    for name in common.ALL_ARCHS:
        card_path = out / f"{name}.card.json"
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        summary = loso_runs(card) / "summary.json"
        if summary.exists():
            card["metrics"]["leave_one_source_out"] = metrics.rounded(
                json.loads(summary.read_text()), 4)
            common.write_json(card_path, card)
            print(f"{name}: leave-one-source-out figures attached")
    # the ensemble's: its members' runs combined (`model_export.loso_ensemble`)
    from model_export.loso_ensemble import Runs

    summary = Runs(shipped_balance_groups(out)).out / "summary.json"
    if (out / "ensemble.json").exists() and summary.exists():
        ens = json.loads((out / "ensemble.json").read_text())
        ens["metrics"]["leave_one_source_out"] = metrics.rounded(
            json.loads(summary.read_text()), 4)
        common.write_json(out / "ensemble.json", ens)
        print("ensemble: leave-one-source-out figures attached")
    # and the same over every seed and resnet length trained (`model_export.loso_seeds`)
    from model_export.loso_seeds import OUT as SEEDS

    if (out / "ensemble.json").exists() and (SEEDS / "summary.json").exists():
        ens = json.loads((out / "ensemble.json").read_text())
        ens["metrics"]["leave_one_source_out_seeds"] = json.loads(
            (SEEDS / "summary.json").read_text())
        common.write_json(out / "ensemble.json", ens)
        print("ensemble: leave-one-source-out figures over seeds attached")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--name", choices=list(common.ALL_ARCHS))
    ap.add_argument("--run", type=Path)
    ap.add_argument("--ensemble", action="store_true")
    ap.add_argument("--attach-loso", action="store_true",
                    help="only copy the LOSO summaries into the shipped cards")
    ap.add_argument("--rethreshold", action="store_true",
                    help="re-apply the threshold rule to the shipped --members (from their saved "
                    "scores), then the ensemble")
    ap.add_argument("--members", nargs="*", default=None,
                    help="ensemble members (default: the two required detectors)")
    ap.add_argument("--sweep-val-rate", action="store_true",
                    help="only print the shipped ensemble's test figures under stricter rules")
    ap.add_argument("--out", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="subsample val/test (smoke runs)")
    a = ap.parse_args(argv)
    if a.attach_loso:
        attach_loso(a.out)
        return
    if a.sweep_val_rate:
        sweep_val_rate(a.out)
        return
    if a.rethreshold:
        for n in a.members or list(common.ARCHS):
            rethreshold_member(n, a.out)
        a.ensemble = True
    if a.ensemble:
        for n in a.members or list(common.ARCHS):
            add_view_scores(n, a.out)
    if a.name:
        evaluate_member(a.name, a.run or common.RUNS_DIR / a.name, a.out, a.force, a.limit)
    if a.ensemble:
        evaluate_ensemble(a.out, a.members)
    if not (a.name or a.ensemble):
        ap.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()

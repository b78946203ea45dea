"""The agreement rule: FAKE only where the mobilenet member on its own finds the face fake too.

    python -m model_export.agree [--models DIR] [--measure]

Why. The leave-one-source-out runs at the shipped resnet's length (16 epochs; `gpu_batch --plan
seeds`, `loso_seeds`) show the ensemble calling 7.5-10 % of the held-out Unsplash portraits and
snapshots fake where the mobilenet recipe alone calls 0.5-6 % fake: the from-scratch detectors
learn cues of the training collections that unseen real photos trip. Requiring the mobilenet,
the ImageNet-initialised member whose held-out figures are the best, to reach its own threshold
(its card's, chosen by the same rule as the ensemble's) before a face is called FAKE keeps those
false alarms at the mobilenet's level; the ensemble's score still decides REAL, UNSURE and how
sure a FAKE is.

The member's logit is the one the service has for the face: its first-view logit where the view
cascade stopped at the first stage, its mean over the views otherwise. Writes ``agreement`` into
``ensemble.json`` (the rule, the member and its threshold, and the test figures: reals called
fake and fakes caught without and with it, with and without the familiarity gate, per source,
and the changed copies of real faces called FAKE); ``--measure`` only prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx

from model_export import common, metrics
from model_export.data import Cache
from service.detection import preprocess
from service.detection.cascade import Cascade

MEMBER = "mobilenet"
RULE = ("a face is called FAKE only when the {member} member on its own scores it at or above its "
        "own threshold ({threshold:.4f}, its card's) as well; otherwise a FAKE score is answered "
        "UNSURE. Its logit: the first view's where the view cascade stops at its first stage, the "
        "mean over the views otherwise")


def served_member_logit(ens: dict, names: list[str], sc: dict, split: str) -> np.ndarray:
    """The member's logit per face as the service has it (`split`: test, val or robust)."""
    j = names.index(MEMBER)
    views = {n: np.asarray(sc[n][f"{split}_views"]) for n in names}
    full = np.asarray(sc[MEMBER][split])
    if not ens.get("cascade"):
        return full
    c = Cascade.from_card(ens["cascade"], names, ens["threshold"], tuple(ens["uncertain_band"]))
    first = np.stack([views[n][..., c.first_view] for n in names], -1)
    _, more = c.served_logit(first, combined(ens, names, sc, split))
    return np.where(more, full, first[..., j])


def combined(ens: dict, names: list[str], sc: dict, key: str) -> np.ndarray:
    """The ensemble's every-view logit from its members' saved scores ``sc[name][key]``."""
    z = np.stack([sc[n][key] for n in names], -1)
    comb = ens["combine"]
    if not isinstance(comb, dict):  # "mean_logit"
        return z.mean(-1)
    return z @ np.array([comb["weights"][n] for n in names]) + comb.get("bias", 0.0)


def figures(y, p, sources, t, confirmed, unfamiliar=None) -> dict:
    """Reals called fake and fakes caught: without / with the rule (and, given ``unfamiliar``,
    the same with the gate as well), overall and per source."""
    fake = p >= t
    gated = fake if unfamiliar is None else fake & ~unfamiliar

    def shares(mask):
        return {"reals_called_fake": float(mask[y == 0].mean()),
                "fakes_caught": float(mask[y == 1].mean())}

    out = {"without_rule": shares(fake), "with_rule": shares(fake & confirmed),
           "faces_unconfirmed": float((fake & ~confirmed).mean())}
    if unfamiliar is not None:
        out["with_gate"] = shares(gated)
        out["served"] = shares(gated & confirmed)  # the gate and the rule: what the service says
    out["per_source"] = {}
    for s in sorted(set(sources)):
        m = sources == s
        row = {}
        for c, key in ((0, "reals_called_fake"), (1, "fakes_caught")):
            k = m & (y == c)
            if k.any():
                row[key] = [float(gated[k].mean()), float((gated & confirmed)[k].mean())]
        out["per_source"][str(s)] = row
    return out


def unfamiliar_on_test(models: Path, cache: Cache, te: np.ndarray) -> np.ndarray | None:
    """The shipped gate's verdict on each test face (None without a gate)."""
    from model_export import gate

    ens = json.loads((models / "ensemble.json").read_text())
    if not ens.get("gate"):
        return None
    card = json.loads((models / f"{gate.MEMBER}.card.json").read_text())
    sess = gate.session(onnx.load(str(models / card["files"]["cpu"])))
    spec = preprocess.InputSpec.from_card(common.SPEC)
    d, = gate.onnx_outputs(sess, cache, te, spec, [gate.OUTPUT])
    return d > ens["gate"]["limit"]


def main(argv=None):
    from model_export.evaluate import scores_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--measure", action="store_true", help="print the figures only")
    a = ap.parse_args(argv)
    ens_path = a.models / "ensemble.json"
    ens = json.loads(ens_path.read_text())
    names = ens["members"]
    if MEMBER not in names:
        raise SystemExit(f"{MEMBER} is not a member of the ensemble")
    if ens.get("cascade") and MEMBER not in ens["cascade"]["first_members"]:
        raise SystemExit(f"{MEMBER} must be in the cascade's first stage")
    tm = json.loads((a.models / f"{MEMBER}.card.json").read_text())["threshold"]
    sc = {n: dict(np.load(scores_path(n, a.models))) for n in names}
    cache = Cache(common.SPEC)
    te = cache.index("test")
    y, s = cache.labels[te], cache.sources[te]
    p = preprocess.sigmoid(np.load(scores_path("ensemble", a.models))["test"])  # served
    pm = preprocess.sigmoid(served_member_logit(ens, names, sc, "test"))
    test = figures(y, p, s, ens["threshold"], pm >= tm, unfamiliar_on_test(a.models, cache, te))
    out = {"test": test}
    if "robust_views" in sc[MEMBER]:  # the changed copies of real faces called FAKE
        from model_export import robust as robust_mod

        r = np.load(robust_mod.robust_path(common.SPEC))
        real = (cache.labels[r["index"]] == 0)[:, None] & r["found"]
        z = combined(ens, names, sc, "robust")
        if ens.get("cascade"):
            c = Cascade.from_card(ens["cascade"], names, ens["threshold"],
                                  tuple(ens["uncertain_band"]))
            first = np.stack([sc[n]["robust_views"][..., c.first_view] for n in names], -1)
            z = c.served_logit(first, z)[0]
        fake = real & (preprocess.sigmoid(z) >= ens["threshold"])
        pmr = preprocess.sigmoid(served_member_logit(ens, names, sc, "robust"))
        out["changed_copies"] = {"real_copies": int(real.sum()),
                                 "called_fake_without_rule": int(fake.sum()),
                                 "called_fake_with_rule": int((fake & (pmr >= tm)).sum())}
    print(json.dumps(metrics.rounded(out, 4), indent=1))
    if a.measure:
        return
    ens["agreement"] = metrics.rounded({
        "member": MEMBER, "threshold": tm, "rule": RULE.format(member=MEMBER, threshold=tm),
        "metrics": out,
        "command": "python -m model_export.agree " + " ".join(argv if argv else sys.argv[1:]),
    }, 4)
    common.write_json(ens_path, ens)
    print(f"agreement written into {ens_path}")


if __name__ == "__main__":
    main()

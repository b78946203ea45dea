"""The agreement rule: FAKE only where every detector run on every face finds it fake on its own.

    python -m model_export.agree [--models DIR] [--data DIR] [--measure]

Why. The ensemble's score is a weighted sum, so one member sure of a cue it learned from the
training collections can carry a face over the threshold on its own. On real photographs from
outside the data (`model_export.outside_photos`) 8 of 71 real faces were called FAKE with the
ensemble and the MobileNetV2 alone confirming (the rule until 2026-12-01), none when the ResNet
had to confirm too; held out of training (`model_export.loso_ensemble`, ``members_agree``), the
real sources called fake fell from up to 5.2 % to at most 1.0 %. A wrong FAKE on a real photo is
the worst answer the service can give, so FAKE now needs each of the view cascade's first-stage
members (the ones scored on every face; every member without a cascade) at or above its own
card's threshold, chosen by the same rule as the ensemble's; otherwise the face is UNSURE. The
ensemble's score still decides REAL, UNSURE and how sure a FAKE is.

Writes ``agreement`` into ``ensemble.json``: the members and their thresholds, the rule, and
what it changes as served (`served_verdicts` on the test split: each image through the
service's whole path, answered without the rule and with it). ``--measure`` only prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model_export import common, metrics
from model_export.data import DEFAULT_DATA

RULE = ("a face is called FAKE only when each of {members} on its own scores it at or above its "
        "own card's threshold ({thresholds}) as well; otherwise a FAKE score is answered UNSURE. "
        "A member's logit: the first view's where the view cascade stops at its first stage, "
        "the mean over the views otherwise")


def rule_members(ens: dict) -> list[str]:
    """The members the rule asks: the cascade's first stage, or every member without one."""
    return list(ens["cascade"]["first_members"]) if ens.get("cascade") else list(ens["members"])


def block(models: Path) -> dict:
    """The ``agreement`` block for the ensemble in ``models`` (without its figures)."""
    ens = json.loads((models / "ensemble.json").read_text())
    names = rule_members(ens)
    own = {n: json.loads((models / f"{n}.card.json").read_text())["threshold"] for n in names}
    return {"members": own,
            "rule": RULE.format(members=" and ".join(names),
                                thresholds=", ".join(f"{n} {t:.4f}" for n, t in own.items()))}


def summary(measured: dict) -> dict:
    """From `served_verdicts.measure` with ``compare="agreement"``: the images called FAKE
    without the rule and with it, per source and label and over all reals and fakes."""
    rows = {k: {"images": v["served"]["images"], "fake_without_rule": v["before"]["fake"],
                "fake_with_rule": v["served"]["fake"]}
            for k, v in measured["per_source"].items()}
    for label, v in measured["all"].items():
        rows[f"all {label}s"] = {"images": v["served"]["images"],
                                 "fake_without_rule": v["before"]["fake"],
                                 "fake_with_rule": v["served"]["fake"]}
    return {"split": measured["split"], "unit": "images, as served", "per_source": rows}


def main(argv=None):
    from model_export import served_verdicts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--measure", action="store_true", help="print the figures only")
    a = ap.parse_args(argv)
    ens_path = a.models / "ensemble.json"
    ens = json.loads(ens_path.read_text())
    rule = {**block(a.models),
            "command": "python -m model_export.agree " + " ".join(argv if argv else sys.argv[1:])}
    if not a.measure:  # the rule first, so that the figures are the served models version's
        common.write_json(ens_path, {**ens, "agreement": rule})
    measured = served_verdicts.measure(a.data, "test", "agreement", models=a.models,
                                       agreement=rule if a.measure else None)
    out = {"test": summary(measured), "models_version": measured["models_version"]}
    print(json.dumps(metrics.rounded(out, 4), indent=1))
    if a.measure:
        return
    common.write_json(ens_path, {**ens, "agreement": metrics.rounded({**rule, "metrics": out}, 4)})
    print(f"agreement written into {ens_path}")


if __name__ == "__main__":
    main()

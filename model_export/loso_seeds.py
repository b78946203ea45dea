"""The ensemble's leave-one-source-out figures over every seed and length that was trained.

    python -m model_export.loso_seeds        # writes runs/loso_seeds/summary.json
    python -m model_export.evaluate --attach-loso                  # copies it into ensemble.json

`loso_ensemble` combines one run of each member per held-out source: seed 0, and the resnet's
short leave-one-source-out recipe (4 epochs; the shipped resnet trained 16). One seed can land
on either side of a target, and a short run can judge unseen photos differently from the
shipped one. So this module combines, the same way, *every* run of the mobilenet's recipe that
exists for a source (`MOBILENET_RUNS`: seed 0, the CPU seed trials, the GPU runs of
`gpu_batch --plan seeds`) with each resnet run that exists for it (`RESNET_RUNS`: the short
recipe; where trained, 16 epochs at the shipped width with balanced draws on the GPU, and the
shipped recipe itself on the CPU: `train --name resnet --out
model_export/runs/loso_resnet_16ep/SOURCE --epochs 16 --epoch-samples 8192 --sbi 0.3 --pair
--patience 6 --val-limit 1200 --exclude-source SOURCE`, about 30 min on one core). Per source and
resnet recipe: each seed's held-out reals called fake (plain; with the familiarity gate at its
shipped share; and served: the gate and the agreement rule of `agree` together), its fakes' AUC
and share caught (plain and served), and the mean and worst over the seeds.

The GPU runs trained and were scored on the crops `gpu_pack` carries (JPEG, quality 90); seed 0
ran on both machines, which shows what that changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model_export import agree, common, gate, metrics
from model_export.data import SOURCES, Cache

OUT = common.RUNS_DIR / "loso_seeds"
# each: a glob under runs/ ({s}: the held-out source); the first is the run the cards cite
MOBILENET_RUNS = ["loso_mobilenet_balance8/{s}", "trial_balance/{s}-k8-s*",
                  "gpu/loso_mobilenet_b8_s*/{s}"]
RESNET_RUNS = {"4 epochs (the LOSO recipe)": "loso/{s}",
               "16 epochs (the shipped length), balanced draws": "gpu/loso_resnet_b8_16ep/{s}",
               "16 epochs, the shipped recipe": "loso_resnet_16ep/{s}"}
KEYS = ("reals_called_fake", "fakes_auc_vs_seen_test_reals", "fakes_caught")


def runs_for(pattern: str, source: str, root: Path = common.RUNS_DIR) -> list[Path]:
    return sorted(p for p in root.glob(pattern.format(s=source)) if (p / "summary.json").exists())


def summarise(rows: list[dict]) -> dict:
    """Mean and worst over seeds of each figure the rows have (worst: the most reals called fake,
    the lowest AUC)."""
    out = {"seeds": len(rows)}
    for key in (*KEYS, "reals_called_fake_gated", "reals_called_fake_served",
                "fakes_caught_served"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            worst = max(vals) if key.startswith("reals") else min(vals)
            out[key] = {"mean": float(np.mean(vals)), "worst": float(worst),
                        "min": float(min(vals)), "max": float(max(vals))}
    return out


def source_rows(cache: Cache, source: str) -> dict[str, list[dict]]:
    from model_export.evaluate import shipped_balance_groups
    from model_export.loso_ensemble import Runs, source_figures

    balance = shipped_balance_groups(common.MODELS_DIR)
    share = f"{gate.GATED_SHARE:g}"
    out = {}
    mobilenets = [r for pattern in MOBILENET_RUNS for r in runs_for(pattern, source)]
    for recipe, pattern in RESNET_RUNS.items():
        resnets = runs_for(pattern, source)
        if not resnets or not mobilenets:
            continue
        rows = []
        for m in mobilenets:
            runs = Runs(balance, override={"mobilenet": m, "resnet": resnets[0]})
            f = source_figures(cache, ["resnet", "mobilenet"], source, runs)
            seed = json.loads((m / "summary.json").read_text())["args"]["seed"]
            row = {"mobilenet_run": str(m.relative_to(common.RUNS_DIR)), "seed": seed,
                   **{k: f[k] for k in KEYS if k in f}}
            if "reals_called_fake" in f.get("gate", {}).get(share, {}):
                row["reals_called_fake_gated"] = f["gate"][share]["reals_called_fake"]
            for k in ("reals_called_fake", "fakes_caught"):  # the gate and the agreement rule
                if k in f.get("served", {}):
                    row[f"{k}_served"] = f["served"][k]
            rows.append(row)
            print(source, recipe, json.dumps(metrics.rounded(row, 4)), flush=True)
        out[recipe] = {"resnet_run": str(resnets[0].relative_to(common.RUNS_DIR)),
                       "runs": rows, "over_seeds": summarise(rows)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", nargs="*", default=SOURCES)
    a = ap.parse_args(argv)
    cache = Cache(common.SPEC)
    summary = {"method": "python -m model_export.loso_seeds: " + __doc__.split("\n\n")[2]
               .replace("\n", " "), "gate_share": gate.GATED_SHARE,
               "agreement_members": agree.rule_members(
                   json.loads((common.MODELS_DIR / "ensemble.json").read_text())),
               "sources": {s: source_rows(cache, s) for s in a.sources}}
    OUT.mkdir(parents=True, exist_ok=True)
    common.write_json(OUT / "summary.json", metrics.rounded(summary, 4))
    print("written", OUT / "summary.json")


if __name__ == "__main__":
    main()

"""How much colour edits move a trained run's scores: ``python -m model_export.edit_sensitivity
--run NAME=RUN [--run NAME=RUN ...] [--exclude-source S] [--limit 1500]``.

The test faces of the cache (without ``--exclude-source``, the source a leave-one-source-out run
never saw), evenly sampled, are scored by each run in PyTorch with the service's views, as they
are and after each colour edit of `robust.EDITS` that acts pixel by pixel (so that editing the
aligned crop is editing the whole picture): black and white, sepia, saturation, white balance,
exposure and contrast. Per run and edit: the test AUC, and the mean change of P(fake) of the
fakes and of the reals. A run trained so that colour cannot tell the classes apart keeps its AUC
and its fakes' scores under the edits (`train --colour`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model_export import common, metrics
from model_export.data import Cache
from model_export.evaluate import load_checkpoint
from model_export.robust import photo_edit
from model_export.train import predict_views
from service.detection import preprocess

COLOUR_EDITS = ["gray", "sepia", "saturate", "warm", "cool", "darken", "brighten", "contrast"]


def measure(runs: list[tuple[str, Path]], exclude: str | None, limit: int) -> dict:
    torch.set_num_threads(1)
    cache = Cache(common.SPEC)
    spec = preprocess.InputSpec.from_card(common.SPEC)
    te = cache.index("test", exclude_source=exclude)
    te = te[np.linspace(0, len(te) - 1, min(limit, len(te))).astype(int)]
    y = cache.labels[te]
    faces = np.asarray(cache.serve[te])
    edited = {c: np.stack([photo_edit(f, c, 0) for f in faces]) for c in COLOUR_EDITS}
    out = {"faces": int(len(te)), "fakes": int(y.sum()), "excluded": exclude, "runs": {}}
    for name, run in runs:
        model = load_checkpoint(name, run)
        with torch.inference_mode():
            base = predict_views(model, faces, spec)
        p0 = preprocess.sigmoid(base)
        row = {"auc": metrics.roc_auc(y, base)}
        for c, f in edited.items():
            with torch.inference_mode():
                lo = predict_views(model, f, spec)
            d = preprocess.sigmoid(lo) - p0
            row[c] = {"auc": metrics.roc_auc(y, lo), "fakes_mean_change": float(d[y == 1].mean()),
                      "reals_mean_change": float(d[y == 0].mean())}
        out["runs"][str(run)] = row
        print(run, json.dumps(metrics.rounded(row, 3)), flush=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, metavar="NAME=RUN")
    ap.add_argument("--exclude-source")
    ap.add_argument("--limit", type=int, default=1500)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    runs = [(r.split("=", 1)[0], Path(r.split("=", 1)[1])) for r in a.run]
    out = metrics.rounded(measure(runs, a.exclude_source, a.limit), 4)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    print("| run | AUC | " + " | ".join(COLOUR_EDITS) + " |")
    print("|---|---|" + "---|" * len(COLOUR_EDITS))
    for run, row in out["runs"].items():
        print(f"| {run} | {row['auc']:.3f} | " + " | ".join(
            f"{row[c]['auc']:.3f} ({row[c]['fakes_mean_change']:+.3f})" for c in COLOUR_EDITS)
            + " |")
    print("(cells: AUC after the edit (the fakes' mean change of P(fake)))")


if __name__ == "__main__":
    main()

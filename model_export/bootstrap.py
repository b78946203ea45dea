"""Write randomly initialised (seeded) detectors with full cards marked ``"trained": false``.

    python -m model_export.bootstrap [--out models]

Lets the service run end to end before (or without) training; the scores mean nothing.
Refuses to overwrite trained models unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model_export import common, export


def bootstrap(out: Path, seed: int = 0, force: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    s = common.SPEC["input_size"]
    rng = np.random.default_rng(seed)
    calib = rng.normal(0, 1, (16, 3, s, s)).astype(np.float32)
    cmd = "python -m model_export.bootstrap"
    for name in common.ARCHS:
        card_path = out / f"{name}.card.json"
        if card_path.exists() and json.loads(card_path.read_text()).get("trained") and not force:
            print(f"{card_path} is a trained model: not overwritten (use --force)")
            continue
        common.seed_everything(seed)
        model = common.build_named(name).eval()
        fp32 = export.export_fp32(model, out / f"{name}.fp32.onnx", s)
        export.check_agreement(model, fp32, calib[:4])
        export.quantize_int8(fp32, out / f"{name}.int8.onnx", calib)
        card = common.base_card(name, model, trained=False, command=cmd)
        card["note"] = f"randomly initialised (seed {seed}): scores are meaningless"
        common.write_json(card_path, card)
        print("wrote", name)
    ens = {
        "members": list(common.ARCHS),
        "combine": "mean_logit",
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "trained": False,
        "metrics": {},
        "command": cmd,
    }
    ens_path = out / "ensemble.json"
    if not (ens_path.exists() and json.loads(ens_path.read_text()).get("trained")) or force:
        common.write_json(ens_path, ens)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    bootstrap(a.out, a.seed, a.force)


if __name__ == "__main__":
    main()

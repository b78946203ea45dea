"""What the familiarity gate adds to the mobilenet member's CPU, measured in turns.

    python -m bench.gate_cost [--rounds 8] [--batch 16] [--runs 200]

The shipped INT8 file (with the gate's output) and the same file without it
(`model_export.gate.strip`), one intra-op thread each as the service runs them, take turns (the
first alternating) on the same batch of inputs (random normal: a convolutional network's cost
does not depend on the pixel values); each round's process CPU per row is recorded, the
comparison is per round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import onnx

from model_export import gate
from service.detection.faces import MODELS_DIR as MODELS


def cpu_ms_per_row(sess, names, x, runs: int) -> float:
    t = time.process_time()
    for _ in range(runs):
        sess.run(names, {"image": x})
    return (time.process_time() - t) * 1000 / (runs * len(x))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=200)
    a = ap.parse_args(argv)
    card = json.loads((MODELS / "mobilenet.card.json").read_text())
    model = onnx.load(str(MODELS / card["files"]["cpu"]))
    with_gate, without = gate.session(model), gate.session(gate.strip(model))
    side = card["input_size"]
    x = np.random.default_rng(0).normal(size=(a.batch, 3, side, side)).astype(np.float32)
    pairs = []
    for r in range(a.rounds):  # alternating which goes first: a round's drift hits both
        if r % 2:
            o = cpu_ms_per_row(without, ["logit", "cam"], x, a.runs)
        w = cpu_ms_per_row(with_gate, ["logit", "cam", gate.OUTPUT], x, a.runs)
        if not r % 2:
            o = cpu_ms_per_row(without, ["logit", "cam"], x, a.runs)
        pairs.append((w, o))
    ratios = [w / o for w, o in pairs]
    print(f"mobilenet INT8, {a.batch} rows a run, {a.rounds} rounds of {a.runs} runs each:")
    print(f"  with the gate    {statistics.median(w for w, _ in pairs):.3f} ms CPU per row")
    print(f"  without          {statistics.median(o for _, o in pairs):.3f} ms CPU per row")
    print(f"  ratio per round  median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()

"""Verdicts as the service gives them, on whole images of one split: ``python -m
model_export.served_verdicts [--split test] [--json F]``.

Each image of the split goes through the service's own path with the shipped files (`prepare`:
decode, BlazeFace, aligned views; `Detector.score_many`: the view cascade; `Detector.summarize`:
threshold, band, too-small faces, the familiarity gate and the agreement rule), one at a time.
Per source and label, the share of the images answered REAL, UNSURE, FAKE and "no face", and of
the judged faces the share marked unfamiliar.

Beside what the service answers, the same images without one of its rules, so the two can be
compared on the same run (``before``: each image summarized again from the same scores):
``--compare gate`` (the default until 2026-12-01): the familiarity gate as it was before
2026-11-30, holding back FAKE only (an unfamiliar face scored below the band was answered REAL);
``--compare edge``: no edge rule (a face running off the picture's edge is judged like any other,
`model_export.edge`); ``--compare agreement``: no agreement rule (FAKE on the ensemble's score
alone, `model_export.agree`). The last column counts the faces the edge rule leaves unjudged.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from model_export import metrics
from model_export.data import DEFAULT_DATA, read_manifest
from service.detection.detector import Detector, prepare
from service.detection.models import Agreement, load_ensemble
from service.settings import Settings

VERDICTS = ("real", "uncertain", "fake", "no_face")


def answers(det: Detector, prep, scored, compare: str = "gate") -> tuple[dict, dict]:
    """(the right of each cell, the left), from one scoring: as served and the same without the
    rule ``compare`` names (the gate's ``holds`` narrowed to FAKE, no edge rule, or no agreement
    rule)."""
    served = det.summarize(prep, *scored)[0]
    if compare == "agreement":
        rule, det.ensemble.agreement = det.ensemble.agreement, None
        try:
            return served, det.summarize(prep, *scored)[0]
        finally:
            det.ensemble.agreement = rule
    if compare == "edge":
        card = det.ensemble.card
        det.ensemble.card = {k: v for k, v in card.items() if k != "edge"}
        try:
            return served, det.summarize(prep, *scored)[0]
        finally:
            det.ensemble.card = card
    gate = det.ensemble.gate
    if gate is None or gate.holds == ("fake",):
        return served, served
    det.ensemble.gate = replace(gate, holds=("fake",))
    try:
        return served, det.summarize(prep, *scored)[0]
    finally:
        det.ensemble.gate = gate


def shares(counts: Counter) -> dict:
    n = sum(counts.values())
    return {v: round(counts[v] / n, 4) for v in VERDICTS} | {"images": n}


def measure(data: Path, split: str, compare: str = "gate", models: Path | None = None,
            agreement: dict | None = None) -> dict:
    """Every image of ``split`` as served by the files in ``models`` (the settings' by default),
    with ``agreement`` in place of the card's agreement rule if given."""
    s = Settings()
    ens = load_ensemble(models or s.models_dir, s.device, s.inference_threads)
    if agreement is not None:
        ens.agreement = Agreement.from_card(agreement, ens.members)
    det = Detector(ens, max_batch=1, max_wait_ms=0.0, max_image_pixels=s.max_image_pixels,
                   prepare_workers=1)
    served, before = defaultdict(Counter), defaultdict(Counter)
    unfamiliar = defaultdict(lambda: [0, 0])
    cut_off = defaultdict(lambda: [0, 0])
    started = time.time()
    try:
        for r in (r for r in read_manifest(data) if r.split == split):
            key = f"{r.source}/{'fake' if r.label else 'real'}"
            prep = prepare((data / r.path).read_bytes(), det.spec, s.max_image_pixels,
                           det.finder)
            scored = det.score_many([prep])[0] if prep.face_found else (None, None, None)
            result, without = answers(det, prep, scored, compare)
            served[key][result["verdict"]] += 1
            before[key][without["verdict"]] += 1
            for f in result["faces"]:
                cut_off[key][0] += bool(f.get("cut_off"))
                cut_off[key][1] += 1
                if not (f["too_small"] or f.get("cut_off")):
                    unfamiliar[key][0] += bool(f.get("unfamiliar"))
                    unfamiliar[key][1] += 1
    finally:
        det.prepare_pool.shutdown()
        det.infer_pool.shutdown()
    rows = {}
    for key in sorted(served):
        u, n = unfamiliar[key]
        c, m = cut_off[key]
        rows[key] = {"served": shares(served[key]),
                     "before": shares(before[key]),
                     "judged_faces_unfamiliar": round(u / n, 4) if n else None,
                     "faces_cut_off": round(c / m, 4) if m else None}
    totals = {}
    for label in ("real", "fake"):
        for name, table in (("served", served), ("before", before)):
            c = sum((table[k] for k in table if k.endswith("/" + label)), Counter())
            totals.setdefault(label, {})[name] = shares(c)
    return {"split": split, "compare": compare, "models_version": ens.version,
            "per_source": rows, "all": totals,
            "seconds": round(time.time() - started, 1), "machine": platform.platform()}


def table(out: dict) -> str:
    lines = ["| source | images | REAL | UNSURE | FAKE | no face | judged faces unfamiliar | "
             "faces cut off |", "|---|---|---|---|---|---|---|---|"]
    none = {"judged_faces_unfamiliar": None, "faces_cut_off": None}
    rows = {**out["per_source"], **{f"all {k}s": {**v, **none} for k, v in out["all"].items()}}
    for key, row in rows.items():
        a, b = row.get("before", row.get("before_gate_on_real")), row["served"]
        cells = [f"{100 * a[v]:.1f} → {100 * b[v]:.1f} %" if a[v] != b[v] else f"{100 * b[v]:.1f} %"
                 for v in VERDICTS]
        u, c = row["judged_faces_unfamiliar"], row.get("faces_cut_off")
        lines.append(f"| {key} | {b['images']} | " + " | ".join(cells)
                     + f" | {'–' if u is None else f'{100 * u:.1f} %'}"
                     + f" | {'–' if c is None else f'{100 * c:.1f} %'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--compare", default="gate", choices=("gate", "edge", "agreement"),
                    help="the rule left out of the 'before' figures")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    out = measure(a.data, a.split, a.compare)
    if a.json:
        a.json.write_text(json.dumps(metrics.rounded(out, 4), indent=1))
    print(table(out))
    cells = {"gate": "the gate on FAKE only → as served", "edge": "no edge rule → as served",
             "agreement": "no agreement rule → as served"}[out.get("compare", "gate")]
    print(f"({out['seconds']} s; cells: {cells})")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

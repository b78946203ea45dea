"""How far a face may run off the picture and still be judged: ``python -m model_export.edge
[--per-group 30] [--processes 2] [--measure]``.

Where a face's aligned square reaches past the picture, `preprocess.align_face` fills the part
outside by repeating the picture's edge, so the detectors read smeared stripes instead of a cheek
or an ear. Photos cut that way are common (tight thumbnails, group photos, video frames), and no
training source shows them in one class only by design.

The measure: val images (``--per-group`` per source and label, evenly spread over the manifest's
order) whose main face's square lies wholly inside the picture are cut by the picture's edge: the
picture is cropped so that a share ``f`` of the square's width (or height) lies outside, from the
left, the right, the top and the bottom in turn, for every ``f`` of ``CUTS``. Each copy goes
through the service's whole path (`prepare`, the view cascade, `Detector.summarize` with its
band, gate and agreement rule, but no edge rule), and the face's verdict and P(fake) are compared
with the uncut picture's.

The rule written into ``ensemble.json`` (``edge.max_outside``; the service reads it): the largest
``f`` such that at every cut up to it **no real face turns FAKE** and the real faces' P(fake)
**rises by at most ``MAX_MEAN_RISE`` on average** (a drift towards FAKE that the threshold rule,
set on uncut faces, does not allow for). A face whose square lies more than ``max_outside``
outside the picture is answered UNSURE with a note (``cut_off`` in the API), like a face too
small to judge. ``--measure`` prints the figures and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from model_export import common, metrics
from model_export.data import DEFAULT_DATA
from model_export.photo_edits import centre, nearest, sample, served
from service.detection import preprocess as pp
from service.detection.detector import Detector
from service.detection.models import load_ensemble
from service.settings import Settings

CUTS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
SIDES = ("left", "right", "top", "bottom")
MAX_MEAN_RISE = 0.02
RULE = ("a face whose aligned square lies more than max_outside outside the picture (the part "
        "align_face fills by repeating the edge) is not judged: UNSURE with a note. max_outside: "
        "the largest cut of a CUTS grid at which, for every cut up to it, no real val face whose "
        "square lay inside the picture turns FAKE when the picture is cropped through its square "
        "(left, right, top, bottom) and the real faces' P(fake) rises by at most {rise} on average")
_det: Detector | None = None


def _detector(models: Path) -> Detector:
    """The shipped ensemble as the service runs it, without the edge rule being measured."""
    global _det
    if _det is None:
        ens = load_ensemble(models, "cpu", 1)
        ens.card = {k: v for k, v in ens.card.items() if k != "edge"}
        _det = Detector(ens, max_batch=1, max_wait_ms=0.0,
                        max_image_pixels=Settings().max_image_pixels, prepare_workers=1)
    return _det


def cut(image: np.ndarray, quad: np.ndarray, share: float, side: str
        ) -> tuple[np.ndarray, np.ndarray]:
    """The picture cropped so that ``share`` of the square's extent lies past its ``side``
    edge; and the crop's offset (x, y) in the original picture."""
    h, w = image.shape[:2]
    x0, y0 = np.clip(quad.min(0), 0, [w, h])  # a square already past an edge is cut from there
    x1, y1 = np.clip(quad.max(0), 0, [w, h])
    if side == "left":
        a = int(round(x0 + share * (x1 - x0)))
        return image[:, a:], np.array([a, 0])
    if side == "right":
        return image[:, :int(round(x1 - share * (x1 - x0)))], np.zeros(2)
    if side == "top":
        a = int(round(y0 + share * (y1 - y0)))
        return image[a:], np.array([0, a])
    if side == "bottom":
        return image[:int(round(y1 - share * (y1 - y0)))], np.zeros(2)
    raise ValueError(side)


def _work(job):
    path, data, models = job
    cv2.setNumThreads(1)
    det = _detector(models)
    img = cv2.imread(str(data / path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    base = served(det, img)
    if not base["faces"]:
        return None
    main = max(base["faces"], key=lambda f: f["box"][2] * f["box"][3])
    quad = np.asarray(main["quad"], np.float64)
    h, w = img.shape[:2]
    if pp.outside_share(quad, w, h) > 0.0:
        return None  # only faces wholly inside: the cut alone is measured
    rows = []
    for f in CUTS:
        for side in SIDES:
            copy, off = cut(img, quad, f, side)
            copy = np.ascontiguousarray(copy)
            face = nearest(served(det, copy), centre(main) - off, max(main["box"][2:]))
            if face is None:
                rows.append(None)
                continue
            outside = pp.outside_share(np.asarray(face["quad"]), copy.shape[1], copy.shape[0])
            rows.append((face["verdict"], face["score"], outside))
    return main["verdict"], main["score"], rows


def summarize(jobs, results) -> dict:
    out = {}
    for i, f in enumerate(CUTS):
        row = {}
        for label, name in ((0, "reals"), (1, "fakes")):
            found, outside = [], []
            for (_, _, lab), r in zip(jobs, results):
                if r is None or lab != label:
                    continue
                for s in range(len(SIDES)):
                    x = r[2][i * len(SIDES) + s]
                    if x is not None:
                        found.append((r[0], r[1], x[0], x[1]))
                        outside.append(x[2])
            d = np.array([after - before for _, before, _, after in found])
            row[name] = {
                "copies": len(found),
                "outside_median": float(np.median(outside)) if outside else None,
                "turned_fake": sum(a == "fake" and b != "fake" for b, _, a, _ in found),
                "fake_before": sum(b == "fake" for b, _, _, _ in found) / max(1, len(found)),
                "fake_after": sum(a == "fake" for _, _, a, _ in found) / max(1, len(found)),
                "real_after": sum(a == "real" for _, _, a, _ in found) / max(1, len(found)),
                "delta_p_mean": float(d.mean()) if len(d) else None,
                "delta_p_p90": float(np.percentile(d, 90)) if len(d) else None,
                "delta_p_max": float(d.max()) if len(d) else None,
            }
        out[f"{f:g}"] = row
    return out


def choose(per_cut: dict, max_rise: float = MAX_MEAN_RISE) -> float:
    """The largest cut at which, for it and every smaller one, no real face turned FAKE and
    the reals' mean rise of P(fake) stays within ``max_rise``; 0 when the first cut fails."""
    chosen = 0.0
    for f in sorted(per_cut, key=float):
        r = per_cut[f]["reals"]
        if r["turned_fake"] or r["delta_p_mean"] is None or r["delta_p_mean"] > max_rise:
            break
        chosen = float(f)
    return chosen


def measure(data: Path, models: Path, per_group: int, processes: int, split: str = "val"
            ) -> dict:
    jobs = sample(data, per_group, split)
    started = time.time()
    with Pool(processes) as pool:
        results = pool.map(_work, [(p, data, models) for p, _, _ in jobs], chunksize=2)
    per_cut = summarize(jobs, results)
    measured = [r for r in results if r is not None]
    return {"per_cut": per_cut, "max_outside": choose(per_cut), "split": split,
            "images": len(jobs), "measured": len(measured),
            "sources": sorted({s for _, s, _ in jobs}), "seconds": round(time.time() - started),
            "models_version": load_ensemble(models, "cpu", 1).version}


def table(out: dict) -> str:
    lines = ["| cut (share of the square outside) | real copies | reals turned FAKE | reals' "
             "P(fake): mean / p90 / max change | fakes answered FAKE: uncut → cut |",
             "|---|---|---|---|---|"]
    for f, row in out["per_cut"].items():
        r, k = row["reals"], row["fakes"]
        lines.append(
            f"| {f} (median {r['outside_median']:.2f}) | {r['copies']} | {r['turned_fake']} | "
            f"{r['delta_p_mean']:+.3f} / {r['delta_p_p90']:+.3f} / {r['delta_p_max']:+.3f} | "
            f"{100 * k['fake_before']:.1f} → {100 * k['fake_after']:.1f} % |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--per-group", type=int, default=30)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--split", default="val", choices=("val", "test"),
                    help="the rule is chosen on val; test only with --measure")
    ap.add_argument("--measure", action="store_true", help="print the figures only")
    a = ap.parse_args(argv)
    if a.split != "val" and not a.measure:
        ap.error("the rule is chosen on val: --split test needs --measure")
    out = measure(a.data, a.models, a.per_group, a.processes, a.split)
    print(table(out))
    print(f"max_outside: {out['max_outside']:g} ({out['measured']} of {out['images']} "
          f"{out['split']} images "
          f"measured, {out['seconds']} s)")
    if a.json:
        a.json.write_text(json.dumps(metrics.rounded(out, 4), indent=1))
    if a.measure:
        return
    ens_path = a.models / "ensemble.json"
    ens = json.loads(ens_path.read_text())
    ens["edge"] = metrics.rounded({
        "max_outside": out["max_outside"], "rule": RULE.format(rise=MAX_MEAN_RISE),
        "metrics": {k: out[k] for k in ("per_cut", "split", "images", "measured")},
        "command": "python -m model_export.edge " + " ".join(argv if argv else sys.argv[1:]),
    }, 4)
    common.write_json(ens_path, ens)
    print(f"edge rule written into {ens_path}")


if __name__ == "__main__":
    main()

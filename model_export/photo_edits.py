"""Verdicts as served on edited copies of test images: ``python -m model_export.photo_edits
[--per-group 30] [--processes 2] [--json F]``.

The cards' invariance figures (`model_export.robust`) score the changed copies' aligned faces at
the ensemble's threshold. This runs the service's whole path instead (`prepare`, the view
cascade, `Detector.summarize` with its band, gate and agreement rule) on each sampled image and
on every changed copy of it: the framings and re-encodings of ``robust.CONDITIONS`` and the photo
edits of ``robust.EDITS`` (grayscale, sepia, white balance, exposure, blur, beauty smoothing, a
tilt ...). The face compared is the one nearest the original's main (largest) face, and its
verdict is the one the service answers for that face.

The sample: the first ``--per-group`` images of each source and label of the test split, evenly
spread over the manifest's order. Images where no face is found are left out (nothing to compare).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from model_export import metrics
from model_export.data import DEFAULT_DATA, read_manifest
from model_export.robust import CONDITIONS, EDITS, change_image
from service.detection.detector import Detector, prepare_image
from service.detection.models import load_ensemble
from service.settings import Settings

ALL = CONDITIONS + EDITS
_det: Detector | None = None


def sample(data: Path, per_group: int, split: str = "test") -> list[tuple[str, str, int]]:
    """(path, source, label) of up to ``per_group`` images of ``split`` per source and label,
    evenly spread over the manifest's order."""
    groups = defaultdict(list)
    for r in read_manifest(data):
        if r.split == split:
            groups[(r.source, r.label)].append(r.path)
    out = []
    for (source, label), paths in sorted(groups.items()):
        pick = np.linspace(0, len(paths) - 1, min(per_group, len(paths))).astype(int)
        out += [(paths[i], source, label) for i in pick]
    return out


def _detector() -> Detector:
    global _det
    if _det is None:
        s = Settings()
        ens = load_ensemble(s.models_dir, "cpu", 1)
        _det = Detector(ens, max_batch=1, max_wait_ms=0.0, max_image_pixels=s.max_image_pixels,
                        prepare_workers=1)
    return _det


def served(det: Detector, image: np.ndarray) -> dict:
    """The service's answer for a decoded image (BGR), as `Detector.analyze` gives it."""
    prep = prepare_image(image, det.spec, det.finder)
    scored = det.score_many([prep])[0] if prep.face_found else (None, None, None)
    return det.summarize(prep, *scored)[0]


def centre(face: dict) -> np.ndarray:
    x, y, w, h = face["box"]
    return np.array([x + w / 2, y + h / 2])


def nearest(result: dict, point: np.ndarray, side: float) -> dict | None:
    """The face whose centre is nearest ``point``, if within half the original face's side."""
    faces = [f for f in result["faces"] if np.hypot(*(centre(f) - point)) <= side / 2]
    return min(faces, key=lambda f: np.hypot(*(centre(f) - point))) if faces else None


def _work(job):
    path, data = job
    cv2.setNumThreads(1)
    det = _detector()
    img = cv2.imread(str(data / path), cv2.IMREAD_COLOR)
    base = served(det, img)
    if not base["faces"]:
        return None
    main = max(base["faces"], key=lambda f: f["box"][2] * f["box"][3])
    rows = []
    for j, c in enumerate(ALL):
        changed, m = change_image(img, c, seed=j)
        face = nearest(served(det, changed), m[:, :2] @ centre(main) + m[:, 2],
                        max(main["box"][2:]) * np.sqrt(abs(np.linalg.det(m[:, :2]))))
        rows.append(None if face is None else (face["verdict"], face["score"]))
    return main["verdict"], main["score"], rows


def summarize(jobs, results) -> dict:
    out = {}
    for j, c in enumerate(ALL):
        row = {}
        for label, name in ((0, "reals"), (1, "fakes")):
            pairs = [(r[0], r[1], r[2][j]) for (_, _, lab), r in zip(jobs, results)
                     if r is not None and lab == label]
            found = [(v0, s0, x) for v0, s0, x in pairs if x is not None]
            d = np.array([abs(x[1] - s0) for _, s0, x in found])
            before = [v0 for v0, _, _ in found]
            after = [x[0] for _, _, x in found]
            row[name] = {
                "images": len(pairs), "face_found": round(len(found) / max(1, len(pairs)), 4),
                **{f"{v}_before": round(before.count(v) / max(1, len(found)), 4)
                   for v in ("real", "uncertain", "fake")},
                **{f"{v}_after": round(after.count(v) / max(1, len(found)), 4)
                   for v in ("real", "uncertain", "fake")},
                "turned_fake": sum(a == "fake" and b != "fake" for b, a in zip(before, after)),
                "left_fake": sum(b == "fake" and a != "fake" for b, a in zip(before, after)),
                "abs_delta_p_median": float(np.median(d)) if len(d) else None,
                "abs_delta_p_max": float(d.max()) if len(d) else None,
            }
        out[c] = row
    return out


def measure(data: Path, per_group: int, processes: int) -> dict:
    jobs = sample(data, per_group)
    started = time.time()
    with Pool(processes) as pool:
        results = pool.map(_work, [(p, data) for p, _, _ in jobs], chunksize=4)
    ens = load_ensemble(Settings().models_dir, "cpu", 1)
    return {"per_condition": summarize(jobs, results), "models_version": ens.version,
            "images": len(jobs), "no_face": sum(r is None for r in results),
            "sources": sorted({s for _, s, _ in jobs}), "seconds": round(time.time() - started),
            "machine": platform.platform()}


def table(out: dict) -> str:
    lines = ["| change | faces found (reals / fakes) | reals answered FAKE: before → after | "
             "real faces turned FAKE | fakes answered FAKE: before → after | "
             "fakes answered REAL: before → after | |change of P(fake)|, reals: median / max |",
             "|---|---|---|---|---|---|---|"]
    for c, row in out["per_condition"].items():
        r, f = row["reals"], row["fakes"]
        lines.append(
            f"| {c} | {100 * r['face_found']:.1f} / {100 * f['face_found']:.1f} % | "
            f"{100 * r['fake_before']:.1f} → {100 * r['fake_after']:.1f} % | {r['turned_fake']} | "
            f"{100 * f['fake_before']:.1f} → {100 * f['fake_after']:.1f} % | "
            f"{100 * f['real_before']:.1f} → {100 * f['real_after']:.1f} % | "
            f"{r['abs_delta_p_median']:.3f} / {r['abs_delta_p_max']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--per-group", type=int, default=30)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--from-json", type=Path, help="only print the table of a saved run")
    a = ap.parse_args(argv)
    if a.from_json:
        print(table(json.loads(a.from_json.read_text())))
        return
    out = measure(a.data, a.per_group, a.processes)
    if a.json:
        a.json.write_text(json.dumps(metrics.rounded(out, 4), indent=1))
    print(table(out))
    print(f"({out['images']} images, {out['no_face']} without a face; {out['seconds']} s; "
          f"models {out['models_version']})")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""Model CPU per image of the shipped view cascade against another one, in turns.

    python -m bench.cascade_ab --other REV [--rounds 6] [--per-source 16]

CPU time on this machine drifts by ±10 % between runs of the same code, more than the
difference between two cascades. So both run in one process on the same prepared images (the
bench's raw sample: the first ``--per-source`` pictures of each source in `bench.images`' pool),
one image at a time through `Detector.score_many` as `bench.raw` does, in alternating rounds;
each round's process CPU per image is recorded, and the comparison is the per-round pairs.
``--other REV`` takes the ``cascade`` of ``models/ensemble.json`` at that git revision (the
detectors stay the shipped ones, so its weights must name the same members). Also printed:
how often the two give the same verdict on these images' faces.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from dataclasses import replace

import numpy as np

from bench.images import image_pool
from service.detection.cascade import Cascade
from service.detection.detector import Detector, prepare
from service.detection.models import load_ensemble
from service.settings import Settings


def other_cascade(ensemble, rev: str) -> Cascade:
    card = json.loads(subprocess.run(["git", "show", f"{rev}:models/ensemble.json"],
                                     check=True, capture_output=True, text=True).stdout)
    return Cascade.from_card(card["cascade"], [m.name for m in ensemble.members],
                             ensemble.threshold, ensemble.band)


def cpu_ms_per_image(detector: Detector, preps) -> float:
    started = time.process_time()
    for p in preps:
        if p.face_found:
            detector.score_many([p])
    return (time.process_time() - started) * 1000 / len(preps)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--other", required=True, help="git revision of the other cascade")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-source", type=int, default=16)
    a = ap.parse_args(argv)
    s = Settings()
    ensemble = load_ensemble(s.models_dir, s.device, s.inference_threads)
    variants = {"shipped": ensemble,
                a.other: replace(ensemble, cascade=other_cascade(ensemble, a.other))}
    detectors = {k: Detector(e, max_batch=1, max_wait_ms=0.0, max_image_pixels=s.max_image_pixels,
                             prepare_workers=1) for k, e in variants.items()}
    first = next(iter(detectors.values()))
    images = image_pool()[: 8 * a.per_source]
    preps = [prepare(im.data, first.spec, s.max_image_pixels, first.finder) for im in images]
    faces = {k: _faces(d, preps) for k, d in detectors.items()}  # also warms every shape
    runs = {k: [] for k in detectors}
    for _ in range(a.rounds):
        for k, d in detectors.items():
            runs[k].append(cpu_ms_per_image(d, preps))
    (ka, ra), (kb, rb) = runs.items()
    fa, fb = faces.values()
    same = np.mean([x["verdict"] == y["verdict"] for x, y in zip(fa, fb)])
    print(f"{len(preps)} images, {len(fa)} faces; model CPU ms per image (one at a time), per "
          f"round:")
    for k, r in runs.items():
        print(f"  {k}: " + ", ".join(f"{x:.2f}" for x in r) + f"  (median {statistics.median(r):.2f})")
    ratio = [x / y for x, y in zip(ra, rb)]
    print(f"  {ka} / {kb} per round: " + ", ".join(f"{x:.3f}" for x in ratio)
          + f"  (median {statistics.median(ratio):.3f})")
    print(f"same verdict on {same:.1%} of the faces; faces sent on to every view: "
          + ", ".join(f"{k} {np.mean([f['views'] > 1 for f in fs]):.1%}"
                      for k, fs in faces.items()))
    for d in detectors.values():
        d.prepare_pool.shutdown()
        d.infer_pool.shutdown()


def _faces(detector: Detector, preps) -> list[dict]:
    """Every face's answer, as the service gives it."""
    out = []
    for p, scored in zip(preps, detector.score_many(preps)):
        if p.face_found:
            out += detector.summarize(p, *scored)[0]["faces"]
    return out


if __name__ == "__main__":
    main()

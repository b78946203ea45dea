"""Prepare CPU per image with OpenCV's threads at N against M, in turns.

    python -m bench.opencv_threads [--threads 1 2] [--rounds 8] [--per-source 16]

`prepare` (decode, face finding, aligned views, thumbnail) of the bench's raw sample (the first
``--per-source`` pictures of each source in `bench.images`' pool), one image at a time on one
thread, as a prepare worker runs it, with ``cv2.setNumThreads`` switched between the two
settings each round (this VM's CPU time drifts between runs: compare the pairs). Process CPU
(every thread), ms per image; 0 means OpenCV's default (one thread per core).
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.images import image_pool
from service.detection.detector import prepare
from service.detection.faces import FaceFinder
from service.detection.models import load_ensemble
from service.detection.preprocess import use_opencv_threads
from service.settings import Settings


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", nargs=2, type=int, default=[1, 0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-source", type=int, default=16)
    a = ap.parse_args(argv)
    s = Settings()
    spec = load_ensemble(s.models_dir, "cpu", 1).members[0].spec
    finder = FaceFinder(s.models_dir)
    data = [im.data for im in image_pool()[: 8 * a.per_source]]
    for x in data:  # warm
        prepare(x, spec, s.max_image_pixels, finder)
    runs: dict[int, list[float]] = {n: [] for n in a.threads}
    for _ in range(a.rounds):
        for n in a.threads:
            use_opencv_threads(n)
            started = time.process_time()
            for x in data:
                prepare(x, spec, s.max_image_pixels, finder)
            runs[n].append((time.process_time() - started) * 1000 / len(data))
    use_opencv_threads(s.opencv_threads)
    print(f"{len(data)} images; prepare CPU ms per image, per round:")
    for n, r in runs.items():
        print(f"  OpenCV threads {n or 'default'}: " + ", ".join(f"{x:.2f}" for x in r)
              + f"  (median {statistics.median(r):.2f})")
    (na, ra), (nb, rb) = runs.items()
    ratio = [x / y for x, y in zip(ra, rb)]
    print(f"  {na or 'default'} / {nb or 'default'} per round: "
          + ", ".join(f"{x:.3f}" for x in ratio) + f"  (median {statistics.median(ratio):.3f})")


if __name__ == "__main__":
    main()

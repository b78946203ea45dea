"""How many pictures of each source and class are black and white: ``python -m
model_export.colourless [--data ../shared/data]``.

The service warns on black-and-white pictures (`preprocess.colourless`), because in
``../shared/data`` they are all real photos, so the detectors can take "no colour" for a sign
of a real photo (training turns 10 % of the faces of both classes grey against it; `augment`).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import cv2

from model_export.data import DEFAULT_DATA, read_manifest
from service.detection import preprocess


def count(data: Path) -> tuple[dict[str, tuple[int, int]], float]:
    """({source/label: (black-and-white pictures, pictures)} over every split, the check's mean
    milliseconds per picture on one thread)."""
    cv2.setNumThreads(1)
    bw, n = Counter(), Counter()
    spent = 0.0
    for r in read_manifest(data):
        key = f"{r.source}/{'fake' if r.label else 'real'}"
        image = cv2.imread(str(data / r.path), cv2.IMREAD_COLOR)
        n[key] += 1
        started = time.perf_counter()
        bw[key] += image is not None and preprocess.colourless(image)
        spent += time.perf_counter() - started
    return {k: (bw[k], n[k]) for k in sorted(n)}, 1000 * spent / max(1, sum(n.values()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    a = ap.parse_args(argv)
    counts, ms = count(a.data)
    print("| source / class | black and white | pictures |\n|---|---|---|")
    for key, (bw, n) in counts.items():
        print(f"| {key} | {bw} ({100 * bw / n:.1f} %) | {n} |")
    print(f"(the check: {ms:.3f} ms per picture on average, one thread)")


if __name__ == "__main__":
    main()

"""CPU of a check's image work on the costliest pictures a page can hold: ``python -m bench.odd_images``.

A check's cost grows with the image, not its file: a flat PNG of millions of pixels, a banner one
pixel high or a rule thousands of pixels long is a few kilobytes. For each picture below (made
here, compressed as PNG), the thread's CPU time of what a check runs on it before the detectors
(in ms): decoding, the face finder (`FaceFinder.find`, with its tiles), the PDQ fingerprint
(`hashing.fingerprint`, with its border trim) and the stored thumbnail, and the faces found. The
largest side is the decoder's pixel limit's (`preprocess.MAX_IMAGE_PIXELS`). ``--baseline REV``
times the same on another commit's ``service`` package (checked out into a temporary folder),
one subprocess each.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent


def pictures() -> dict[str, np.ndarray]:
    """name -> BGR pixels: flat, smooth and noisy pictures of common and extreme shapes."""
    rng = np.random.default_rng(0)

    def ramp(h, w):
        return np.broadcast_to(((np.arange(w)[None, :, None] * 7 + np.arange(h)[:, None, None] * 5
                                 + np.arange(3) * 60) % 256).astype(np.uint8), (h, w, 3))

    return {
        "photo-like noise 1024x768": rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8),
        "flat 3000x3000": np.full((3000, 3000, 3), 200, np.uint8),
        "flat 8000x5000 (40 MP)": np.full((5000, 8000, 3), 200, np.uint8),
        "ramp 4000x3000": ramp(3000, 4000),
        "banner 5000x1": ramp(1, 5000),
        "rule 2x20000": ramp(20000, 2),
        "strip 6000x40": ramp(40, 6000),
        "strip 600000x64": ramp(64, 600_000),
    }


def best_cpu_ms(run, repeat: int) -> tuple[float | None, str | None]:
    """The least thread CPU time of ``repeat`` runs (ms), or the error an older version met."""
    best = None
    for _ in range(repeat):
        began = time.thread_time()
        try:
            run()
        except Exception as e:  # e.g. a side of 0 pixels asked of OpenCV: a 500 in the service
            return None, f"{type(e).__name__}: {str(e)[-120:]}"
        took = (time.thread_time() - began) * 1000
        best = took if best is None else min(best, took)
    return round(best, 1), None


def picture_row(pixels: np.ndarray, finder, repeat: int) -> dict:
    from service.detection import preprocess as pp
    from service.detection.detector import make_thumbnail
    from service.pdq.hashing import fingerprint

    data = cv2.imencode(".png", np.ascontiguousarray(pixels))[1].tobytes()
    image = pp.decode_image(data)
    found = []
    steps = {"decode": lambda: pp.decode_image(data),
             "find": lambda: found.append(len(finder.find(image))),
             "pdq": lambda: fingerprint(image), "thumbnail": lambda: make_thumbnail(image)}
    row = {"png_bytes": len(data)}
    for step, run in steps.items():
        ms, error = best_cpu_ms(run, repeat)
        row[f"{step}_ms" if error is None else f"{step}_error"] = ms if error is None else error
    if found:
        row["faces"] = found[0]
    return row


def measure(repeat: int) -> dict:
    from service.detection.faces import FaceFinder

    finder = FaceFinder()
    out = {}
    for name, pixels in pictures().items():
        out[name] = picture_row(pixels, finder, repeat)
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2, help="the best of this many runs")
    ap.add_argument("--baseline", metavar="REV", help="also time this commit's service package")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--_measure", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._measure:  # in a subprocess, on whatever service package is first on the path
        print(json.dumps(measure(a.repeat)))
        return
    report = {"machine": f"{platform.processor() or platform.machine()}, "
                         f"{platform.python_version()}", "this_tree": measure(a.repeat)}
    if a.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(f"git archive {a.baseline} service models bench | tar -x -C {tmp}",
                           shell=True, check=True, cwd=REPO)
            done = subprocess.run([sys.executable, "-m", "bench.odd_images", "--_measure",
                                   "--repeat", str(a.repeat)], cwd=tmp, check=True,
                                  capture_output=True, text=True, timeout=3600)
            report[f"baseline {a.baseline}"] = json.loads(done.stdout)
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

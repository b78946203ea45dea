"""CPU cost of the PDQ evidence step per checked image: ``python -m bench.pdq_cost``.

Times, per image of the benchmark's set (`bench.images.sample_images`: the first ``--per-source``
test images of each source), the thread's CPU time of what `service.checks.evidence` runs on
every check (``fingerprint``: full and trimmed hashes, the nine window hashes, the border trim),
of decoding the image (which the step also does), and of the face comparison that runs only when
an image's hashes meet a flagged item's (`service.pdq.faces.verified_distance`, on a JPEG q50
copy), and of the same comparison with a hash-list entry (`service.pdq.descriptors`, the item
as its exported row). ``--baseline FILE`` also times the ``fingerprint`` of another version of
``service/pdq/hashing.py`` (e.g. ``git show 28c541c:service/pdq/hashing.py > old.py``) on the
same images, and how many bits its hashes lie from this version's (``bits_moved_from_baseline``).
Each figure is the median over ``--repeat`` passes, in ms of CPU per image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from bench.images import sample_images
from bench.pdq_false_matches import Looker, as_listed
from service.detection.preprocess import decode_image
from service.moderation.near import DEFAULT_MAX_DISTANCE, DEFAULT_WINDOW_MAX_DISTANCE
from service.pdq import hashing
from service.pdq.descriptors import listed_distance
from service.pdq.faces import verified_distance
from tests.support.copies import COPIES


def cpu_ms_per_item(fn, items, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.thread_time()
        for it in items:
            fn(it)
        runs.append((time.thread_time() - started) * 1000 / len(items))
    return round(statistics.median(runs), 3)


def load(path: Path):
    spec = importlib.util.spec_from_file_location("baseline_hashing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bits_moved(old, decoded) -> dict:
    """How far each image's hashes lie from the other version's (bits of 256): the whole-image
    hash, and each of the nine windows; median and largest."""
    whole, windows = [], []
    for im in decoded:
        a, b = hashing.fingerprint(im), old.fingerprint(im)
        whole.append(hashing.distance(a.hash, b.hash))
        windows += [hashing.distance(x, y) for x, y in zip(a.windows, b.windows)]
    return {k: {"median": statistics.median(v), "max": max(v)}
            for k, v in (("whole", whole), ("windows", windows))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-source", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", type=Path, help="another hashing.py to time as well")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    images = sample_images(args.per_source)
    datas = [im.data for im in images]
    decoded = [decode_image(d) for d in datas]
    load_before = os.getloadavg()
    report = {
        "images": len(images),
        "pixels_median": statistics.median(im.shape[0] * im.shape[1] for im in decoded),
        "decode_ms": cpu_ms_per_item(decode_image, datas, args.repeat),
        "fingerprint_ms": cpu_ms_per_item(hashing.fingerprint, decoded, args.repeat),
        "fingerprint_without_windows_ms": cpu_ms_per_item(
            lambda im: hashing.fingerprint(im, with_windows=False), decoded, args.repeat),
        "trim_ms": cpu_ms_per_item(hashing.trim_box, decoded, args.repeat),
    }
    if args.baseline:
        old = load(args.baseline)
        report["baseline"] = str(args.baseline)
        report["baseline_fingerprint_ms"] = cpu_ms_per_item(old.fingerprint, decoded, args.repeat)
        if hasattr(old, "trim_borders"):
            report["baseline_trim_ms"] = cpu_ms_per_item(old.trim_borders, decoded, args.repeat)
        report["bits_moved_from_baseline"] = bits_moved(old, decoded)
    look = Looker()
    pairs = [(look(d), look(COPIES["jpeg_q50"](d))) for d in datas[:16]]
    report["face_check_on_a_hit_ms"] = cpu_ms_per_item(
        lambda p: verified_distance(p[0], p[1], DEFAULT_MAX_DISTANCE, DEFAULT_WINDOW_MAX_DISTANCE),
        pairs, args.repeat)
    entries = [(as_listed(item), query) for item, query in pairs]
    report["hash_list_check_on_a_hit_ms"] = cpu_ms_per_item(
        lambda p: listed_distance(p[0], p[1], DEFAULT_MAX_DISTANCE, DEFAULT_WINDOW_MAX_DISTANCE),
        entries, args.repeat)
    report["load_average"] = [round(x, 1) for x in (*load_before, *os.getloadavg())]
    report["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

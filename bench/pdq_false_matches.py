"""PDQ matching on ``../shared/data``: copies that must match, different images that must not.

``python -m bench.pdq_false_matches [--sample 300] [--groups 300] [--json F]``

Images are hashed exactly as the service hashes them (`service.pdq.hashing.fingerprint`): an
image looked up brings its query hashes (full, trimmed); a flagged item is stored under those
plus nine 95 % windows. As in the service, a pair matches if a query hash of one is within
``--threshold`` of a full or trimmed hash of the other, or within the window threshold of one of
its windows, in either direction. The window threshold is swept, since it trades 5 % crops
against photos of a person who moved a little.

* copies: each of ``--sample`` random images against its JPEG q50, PNG, WebP, 50 % resize,
  5 % centre and corner crops, and a screenshot-like copy (tests/support/copies.py);
* same-group pairs: every pair sharing a ``group`` in london-canada and snapshots (different
  photos of one person), and ``--groups`` DFDC groups (a real video frame and the face swap
  made from it);
* random pairs: every pair among the ``--sample`` images.

Byte-identical files (same SHA-256) are not different images and are left out.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import platform
import random
import time
from collections import defaultdict
from pathlib import Path

from service.detection.preprocess import decode_image
from service.pdq.hashing import Fingerprint, distance, fingerprint
from tests.support.copies import COPIES

REPO = Path(__file__).resolve().parent.parent
WINDOW_SWEEP = (0, 12, 14, 16, 18, 20, 22, 24)


def fp_of(data: bytes) -> Fingerprint:
    return fingerprint(decode_image(data))


def one_way(item: Fingerprint, query: Fingerprint) -> tuple[int, int]:
    """(nearest full/trimmed distance, nearest window distance) of a look-up to an item."""
    q = query.query_hashes()
    return (min(distance(a, b) for a in q for b in item.query_hashes()),
            min(distance(a, b) for a in q for b in item.windows))


def both_ways(a: Fingerprint, b: Fingerprint) -> tuple[int, int]:
    x, y = one_way(a, b), one_way(b, a)
    return min(x[0], y[0]), min(x[1], y[1])


def matches(d: tuple[int, int], threshold: int, window_threshold: int) -> bool:
    return d[0] <= threshold or (window_threshold > 0 and d[1] <= window_threshold)


def sweep(distances: list[tuple[int, int]], threshold: int) -> dict:
    return {w: sum(matches(d, threshold, w) for d in distances) for w in WINDOW_SWEEP}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--threshold", type=int, default=31)
    ap.add_argument("--sample", type=int, default=300, help="images for copies and random pairs")
    ap.add_argument("--groups", type=int, default=300, help="DFDC groups (frame + face swap)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    started = time.perf_counter()
    with open(args.data / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(args.seed)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["source"], r["group"])].append(r)
    people = [g for (s, _), g in groups.items() if len(g) > 1 and s in ("london-canada", "snapshots")]
    dfdc = [g for (s, _), g in groups.items() if len(g) > 1 and s == "dfdc-faces"]
    dfdc = rng.sample(dfdc, min(args.groups, len(dfdc)))
    sample = rng.sample(rows, min(args.sample, len(rows)))
    cache: dict[str, Fingerprint] = {}

    def fp(r: dict) -> Fingerprint:
        if r["path"] not in cache:
            cache[r["path"]] = fp_of((args.data / r["path"]).read_bytes())
        return cache[r["path"]]

    def pairs_of(pairs) -> dict:
        found, examples, n = [], [], 0
        for a, b in pairs:
            if a["sha256"] == b["sha256"]:
                continue
            n += 1
            d = both_ways(fp(a), fp(b))
            found.append(d)
            if matches(d, args.threshold, max(WINDOW_SWEEP)):
                examples.append({"a": a["path"], "b": b["path"], "full": d[0], "window": d[1]})
        return {"pairs": n, "matches_by_window_threshold": sweep(found, args.threshold),
                "close_pairs": sorted(examples, key=lambda e: min(e["full"], e["window"]))[:30]}

    copies: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in sample:
        data = (args.data / r["path"]).read_bytes()
        for name, make in COPIES.items():
            copy = fingerprint(decode_image(make(data)), with_windows=False)
            copies[name].append(one_way(fp(r), copy))
    report = {
        "threshold": args.threshold, "window_sweep": list(WINDOW_SWEEP),
        "copies": {name: {"images": len(d), "matched_by_window_threshold": sweep(d, args.threshold)}
                   for name, d in copies.items()},
        "same_person": pairs_of(p for g in people for p in itertools.combinations(g, 2)),
        "dfdc_frame_and_swap": pairs_of(p for g in dfdc for p in itertools.combinations(g, 2)),
        "random": pairs_of(itertools.combinations(sample, 2)),
        "images_hashed": len(cache), "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

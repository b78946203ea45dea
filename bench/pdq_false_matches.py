"""PDQ matching on ``../shared/data``: copies that must match, different images that must not.

``python -m bench.pdq_false_matches [--sample 200] [--groups 200] [--celebrity-pairs 300]
[--json F]``

Each image is seen as the service sees it: its PDQ fingerprint (`service.pdq.hashing`), its
face boxes from the service's face path (`service.detection.detector.prepare`, the same code a
check runs) and its stored thumbnail. A pair matches as in the service
(`service.moderation.near`): the looked-up image's PDQ quality is at least 50, a query hash of
it is within 31 bits of a full or trimmed hash of the stored one, or within 18 bits of one of
its nine 95 % windows, **and** every face of either image is the same in the other
(`service.pdq.faces.face_checks`), within the limit for images framed alike or the one for
reframed copies; both limits are swept. Pairs of different images are tried both ways round
(either may be the flagged one).

* copies: each of ``--sample`` random images against its JPEG q50, PNG, WebP, 50 % resize,
  5 % centre and corner crops, and a screenshot-like copy (tests/support/copies.py);
* same person: every pair sharing a ``group`` in london-canada and snapshots (different photos
  of one person), and ``--celebrity-pairs`` random pairs of photos of one celebrity;
* DFDC: ``--groups`` pairs of a real video frame and the face swap made from it (matched pairs
  are also told whether the swap is *invisible*: its faces differ from the frame's by less than
  twice what a JPEG q50 re-encode changes), and for ``--swap-copies`` of them, each kind of copy
  of the swap against the frame;
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

import cv2
import numpy as np

from service.detection import preprocess as pp
from service.detection.detector import prepare
from service.detection.faces import FaceFinder
from service.moderation.near import DEFAULT_MAX_DISTANCE, DEFAULT_WINDOW_MAX_DISTANCE
from service.pdq.faces import FaceCheck, Limits, Seen, decode_thumbnail, face_checks, face_difference
from service.pdq.hashing import DEFAULT_MIN_QUALITY, WHOLE, fingerprint
from tests.support.copies import COPIES

REPO = Path(__file__).resolve().parent.parent
SAME_SWEEP = (0.015, 0.02, 0.025, 0.03, 0.04)
REFRAMED_SWEEP = (0.08, 0.1, 0.12, 0.15, 0.2)


def decode_grey(data: bytes):
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


class Looker:
    """Sees images as a check does (face path of the shipped models' input spec)."""

    def __init__(self):
        card = json.loads((REPO / "models" / "vgg16.card.json").read_text())
        self.spec = pp.InputSpec.from_card(card)
        self.finder = FaceFinder()

    def __call__(self, data: bytes) -> Seen:
        prep = prepare(data, self.spec, pp.MAX_IMAGE_PIXELS, self.finder)
        w, h = prep.width, prep.height
        boxes = [(x / w, y / h, (x + bw) / w, (y + bh) / h) for x, y, bw, bh in prep.boxes]
        return Seen(fingerprint(pp.decode_image(data)), boxes, decode_thumbnail(prep.thumbnail))


def invisible_swap(look: Looker, real: bytes, fake: bytes) -> bool:
    """Whether a face swap changed its frame's faces by less than twice what a JPEG q50
    re-encode of the frame changes them (on the original pixels, same framing): then no rule
    that lets re-encoded copies keep a decision can tell the two apart."""
    frame, grey_real, q50 = look(real), decode_grey(real), COPIES["jpeg_q50"](real)
    swap = face_difference(grey_real, frame.faces, WHOLE, decode_grey(fake), look(fake).faces,
                           WHOLE)
    noise = face_difference(grey_real, frame.faces, WHOLE, decode_grey(q50), look(q50).faces,
                            WHOLE)
    return swap is not None and noise is not None and swap < 2 * noise


def checks(item: Seen, query: Seen) -> list[FaceCheck]:
    """The service's face checks; none when the looked-up image's hash is of too low a PDQ
    quality to be matched at all (`NearDuplicates.usable`)."""
    if query.fp.quality < DEFAULT_MIN_QUALITY:
        return []
    return face_checks(item, query, DEFAULT_MAX_DISTANCE, DEFAULT_WINDOW_MAX_DISTANCE)


def matches(found: list[FaceCheck], limits: Limits | None = Limits()) -> bool:
    """Whether the service would match (``limits`` None: PDQ alone)."""
    return any(limits is None or c.passes(limits) for c in found)


def sweep(results: list[list[FaceCheck]]) -> dict:
    out = {"pdq_alone": sum(matches(r, None) for r in results),
           "service": sum(matches(r) for r in results),
           "framed_alike": sum(bool(r) and r[0].same_framing for r in results)}
    default = Limits()
    for f in SAME_SWEEP:
        out[f"same_framing_limit_{f}"] = sum(matches(r, Limits(f, default.reframed))
                                             for r in results)
    for f in REFRAMED_SWEEP:
        out[f"reframed_limit_{f}"] = sum(matches(r, Limits(default.same_framing, f))
                                         for r in results)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--sample", type=int, default=200, help="images for copies and random pairs")
    ap.add_argument("--groups", type=int, default=200, help="DFDC groups (frame + face swap)")
    ap.add_argument("--celebrity-pairs", type=int, default=300)
    ap.add_argument("--swap-copies", type=int, default=100,
                    help="DFDC groups whose swap is also copied (crops, screenshot...)")
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
    by_celebrity: dict[str, list[dict]] = defaultdict(list)  # group: "Name/.../file.jpg"
    for r in rows:
        if r["source"] == "celebrity-press":
            by_celebrity[r["group"].split("/")[0]].append(r)
    celebrities = [g for g in by_celebrity.values() if len(g) > 1]
    celebrity_pairs = [tuple(rng.sample(rng.choice(celebrities), 2))
                       for _ in range(args.celebrity_pairs)]
    sample = rng.sample(rows, min(args.sample, len(rows)))
    look = Looker()
    cache: dict[str, Seen] = {}

    def seen(r: dict) -> Seen:
        if r["path"] not in cache:
            cache[r["path"]] = look((args.data / r["path"]).read_bytes())
        return cache[r["path"]]

    def pairs_of(pairs) -> dict:
        results, examples, n = [], [], 0
        for a, b in pairs:
            if a["sha256"] == b["sha256"]:
                continue
            n += 1
            for x, y in ((a, b), (b, a)):
                found = checks(seen(x), seen(y))
                results.append(found)
                if found:
                    diffs = [c.difference for c in found if c.difference is not None]
                    examples.append({"item": x["path"], "query": y["path"],
                                     "pdq_distance": found[0].distance,
                                     "framed_alike": found[0].same_framing,
                                     "face_difference": round(min(diffs), 3) if diffs else None})
        return {"pairs": n, "tries_both_ways": len(results), "matches": sweep(results),
                "closest": sorted(examples, key=lambda e: e["face_difference"] or 0)[:12]}

    def swap_pairs(groups) -> dict:
        out = pairs_of(tuple(g) for g in groups)
        matched = [g for g in groups for x, y in itertools.permutations(g, 2)
                   if matches(checks(seen(x), seen(y)))]
        out["matched_pairs_invisible"] = sum(
            invisible_swap(look, *((args.data / next(r for r in g if r["label"] == label)["path"])
                                   .read_bytes() for label in ("real", "fake")))
            for g in matched)
        return out

    def swap_copies(groups) -> dict:
        """A copy of the face swap (each kind) against the real frame as the flagged item."""
        found: dict[str, list] = defaultdict(list)
        for g in groups:
            real = next(r for r in g if r["label"] == "real")
            fake = next(r for r in g if r["label"] == "fake")
            data = (args.data / fake["path"]).read_bytes()
            for name, make in COPIES.items():
                found[name].append(checks(seen(real), look(make(data))))
        return {name: {"pairs": len(d), "matches": sweep(d)} for name, d in found.items()}

    copies: dict[str, list] = defaultdict(list)
    missed: dict[str, list] = defaultdict(list)
    for r in sample:
        data = (args.data / r["path"]).read_bytes()
        for name, make in COPIES.items():
            found = checks(seen(r), look(make(data)))
            copies[name].append(found)
            if not matches(found):
                missed[name].append(r["path"])
    report = {
        "pdq_max_distance": DEFAULT_MAX_DISTANCE,
        "window_max_distance": DEFAULT_WINDOW_MAX_DISTANCE,
        "face_limits": vars(Limits()),
        "copies": {name: {"images": len(d), "matched": sweep(d), "missed": missed[name][:10]}
                   for name, d in copies.items()},
        "same_person_london_snapshots": pairs_of(
            p for g in people for p in itertools.combinations(g, 2)),
        "same_person_celebrity": pairs_of(celebrity_pairs),
        "dfdc_frame_and_swap": swap_pairs(dfdc),
        "dfdc_swap_copied": swap_copies(dfdc[:args.swap_copies]),
        "random": pairs_of(itertools.combinations(sample, 2)),
        "images_seen": len(cache), "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

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
reframed copies, and, for two whole images framed alike, within the fine-difference limit
(grey levels at the thumbnails' resolution); all three limits are swept. Pairs of different
images are tried both ways round (either may be the flagged one). Every pair is also tried as
a *hash-list entry* would be (`service.pdq.descriptors`): the stored image as its exported row
(full hash, nine window hashes, face descriptors), the looked-up image with its pixels
(``hash_list`` figures, with their limits swept too).

* copies: each of ``--sample`` random images against its JPEG q50, PNG, WebP, 50 % resize,
  5 % centre and corner crops, and a screenshot-like copy (tests/support/copies.py);
* same person: every pair sharing a ``group`` in london-canada and snapshots (different photos
  of one person), and ``--celebrity-pairs`` random pairs of photos of one celebrity;
* DFDC: ``--groups`` pairs of a real video frame and the face swap made from it (matched pairs
  are also told whether the swap is *invisible*: its faces differ from the frame's by less than
  twice what a JPEG q50 re-encode changes; and for each matched pair, ``evidence``: the largest
  and mean absolute grey-level difference and the PSNR in the frame's face boxes, at the files'
  own resolution, raw and low-passed (Gaussian, sigma 2 px), for the swap and for a JPEG q50
  re-encode of the frame), and for ``--swap-copies`` of them, each kind of copy of the swap
  against the frame (matched copies listed with the same evidence);
* random pairs: every pair among the ``--sample`` images;
* without a face (``--faceless N``, 0 to skip): every DFDC group is looked at, and where the face
  path finds no face in the real frame nor in the swap made from it, the pair is tried both
  ways (two such images are compared as whole frames, `face_checks`); and up to ``N`` of the
  DFDC images without a found face are copied as above, each copy against its original.

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
from service.pdq.descriptors import (
    Listed,
    describe_item,
    format_faces,
    listed_checks,
    parse_faces,
)
from service.pdq.faces import FaceCheck, Limits, Seen, decode_thumbnail, face_checks, face_difference
from service.pdq.hashing import DEFAULT_MIN_QUALITY, WHOLE, Fingerprint, fingerprint
from tests.support.copies import COPIES

REPO = Path(__file__).resolve().parent.parent
SAME_SWEEP = (0.015, 0.02, 0.025, 0.03, 0.04)
REFRAMED_SWEEP = (0.08, 0.1, 0.12, 0.15, 0.2)
FINE_SWEEP = (4.0, 5.0, 6.0, 8.0, None)
FINE_REFRAMED_SWEEP = (8.0, 10.0, 12.0, 15.0, 20.0, None)
LISTED_SAME_SWEEP = (0.02, 0.025, 0.03, 0.04)
LISTED_REFRAMED_SWEEP = (0.04, 0.05, 0.06, 0.07, 0.08)


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


def as_listed(item: Seen) -> Listed:
    """The item as another service imports it from an exported hash list (full hash, window
    hashes, face descriptors written and read back as text)."""
    faces = parse_faces(format_faces(describe_item(item.pixels, item.faces)))
    return Listed(Fingerprint(item.fp.hash, item.fp.quality, None, item.fp.windows), faces)


def entry_checks(entry: Listed, query: Seen) -> list[FaceCheck]:
    if query.fp.quality < DEFAULT_MIN_QUALITY:
        return []
    return listed_checks(entry, query, DEFAULT_MAX_DISTANCE, DEFAULT_WINDOW_MAX_DISTANCE)


def sweep_listed(results: list[list[FaceCheck]]) -> dict:
    out = {"service": sum(matches(r) for r in results)}
    default = Limits()
    for f in LISTED_SAME_SWEEP:
        out[f"same_framing_limit_{f}"] = sum(
            matches(r, Limits(listed_same_framing=f, listed_reframed=default.listed_reframed))
            for r in results)
    for f in LISTED_REFRAMED_SWEEP:
        out[f"reframed_limit_{f}"] = sum(
            matches(r, Limits(listed_same_framing=default.listed_same_framing, listed_reframed=f))
            for r in results)
    return out


def face_evidence(frame: bytes, other: bytes, boxes: list) -> dict:
    """How far ``other`` is from ``frame`` in the frame's face boxes, at the files' resolution
    (grey levels): largest and mean absolute difference and PSNR, raw and low-passed."""
    a, b = decode_grey(frame).astype(np.float64), decode_grey(other).astype(np.float64)
    if a.shape != b.shape:
        return {}
    h, w = a.shape
    mask = np.zeros(a.shape, bool)
    for x0, y0, x1, y1 in boxes:
        mask[int(y0 * h):int(np.ceil(y1 * h)), int(x0 * w):int(np.ceil(x1 * w))] = True
    if not mask.any():
        return {}
    raw = np.abs(a - b)[mask]
    low = np.abs(cv2.GaussianBlur(a - b, (0, 0), 2))[mask]
    mse = float((raw ** 2).mean())
    return {"max": int(raw.max()), "mean": round(float(raw.mean()), 2),
            "psnr_db": round(10 * np.log10(255 ** 2 / mse), 1) if mse else None,
            "lowpass_max": round(float(low.max()), 1), "lowpass_mean": round(float(low.mean()), 2)}


def swap_evidence(look: Looker, real: bytes, fake: bytes) -> dict:
    boxes = look(real).faces
    return {"swap": face_evidence(real, fake, boxes),
            "frame_jpeg_q50": face_evidence(real, COPIES["jpeg_q50"](real), boxes)}


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
    for f in FINE_SWEEP:  # None: without the fine difference
        out[f"fine_limit_{f}"] = sum(matches(r, Limits(fine=f if f is not None else np.inf))
                                     for r in results)
    for f in FINE_REFRAMED_SWEEP:
        out[f"fine_reframed_limit_{f}"] = sum(
            matches(r, Limits(fine_reframed=f if f is not None else np.inf)) for r in results)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--sample", type=int, default=200, help="images for copies and random pairs")
    ap.add_argument("--groups", type=int, default=200, help="DFDC groups (frame + face swap)")
    ap.add_argument("--celebrity-pairs", type=int, default=300)
    ap.add_argument("--swap-copies", type=int, default=100,
                    help="DFDC groups whose swap is also copied (crops, screenshot...)")
    ap.add_argument("--faceless", type=int, default=100,
                    help="DFDC images without a found face to copy (0: skip the face-less rows)")
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
    entries: dict[str, Listed] = {}

    def seen(r: dict) -> Seen:
        if r["path"] not in cache:
            cache[r["path"]] = look((args.data / r["path"]).read_bytes())
        return cache[r["path"]]

    def listed(r: dict) -> Listed:
        if r["path"] not in entries:
            entries[r["path"]] = as_listed(seen(r))
        return entries[r["path"]]

    def pairs_of(pairs) -> dict:
        results, listed_results, examples, n = [], [], [], 0
        for a, b in pairs:
            if a["sha256"] == b["sha256"]:
                continue
            n += 1
            for x, y in ((a, b), (b, a)):
                found = checks(seen(x), seen(y))
                results.append(found)
                listed_results.append(entry_checks(listed(x), seen(y)))
                if found:
                    diffs = [c.difference for c in found if c.difference is not None]
                    examples.append({"item": x["path"], "query": y["path"],
                                     "pdq_distance": found[0].distance,
                                     "framed_alike": found[0].same_framing,
                                     "face_difference": round(min(diffs), 3) if diffs else None})
        return {"pairs": n, "tries_both_ways": len(results), "matches": sweep(results),
                "hash_list": sweep_listed(listed_results),
                "closest": sorted(examples, key=lambda e: e["face_difference"] or 0)[:12]}

    def read(g, label: str) -> bytes:
        return (args.data / next(r for r in g if r["label"] == label)["path"]).read_bytes()

    def fine_of(found: list[FaceCheck]) -> float | None:
        fine = [c.fine for c in found if c.fine is not None]
        return round(min(fine), 2) if fine else None

    def least(found: list[FaceCheck]) -> float | None:
        diffs = [c.difference for c in found if c.difference is not None]
        return round(min(diffs), 3) if diffs else None

    def swap_pairs(groups) -> dict:
        out = pairs_of(tuple(g) for g in groups)
        service, listed_, evidence = [], [], []
        for g in groups:
            tries = list(itertools.permutations(g, 2))
            found = [checks(seen(x), seen(y)) for x, y in tries]
            found_listed = [entry_checks(listed(x), seen(y)) for x, y in tries]
            if any(map(matches, found)):
                service.append(g)
            if any(map(matches, found_listed)):
                listed_.append(g)
            if any(map(matches, found + found_listed)):
                evidence.append({
                    "real": next(r for r in g if r["label"] == "real")["path"],
                    "fake": next(r for r in g if r["label"] == "fake")["path"],
                    "service": any(map(matches, found)),
                    "hash_list": any(map(matches, found_listed)),
                    "face_difference": [least(f) for f in found],
                    "fine_difference": [fine_of(f) for f in found],
                    "listed_difference": [least(f) for f in found_listed],
                    **swap_evidence(look, read(g, "real"), read(g, "fake"))})
        out["matched_pairs"] = len(service)
        out["matched_pairs_invisible"] = sum(
            invisible_swap(look, read(g, "real"), read(g, "fake")) for g in service)
        out["matched_pairs_hash_list"] = len(listed_)
        out["fine_of_tries_the_patches_match"] = sorted(
            fine_of(f) for x, y in itertools.chain.from_iterable(
                itertools.permutations(g, 2) for g in groups)
            if matches(f := checks(seen(x), seen(y)), Limits(fine=np.inf, fine_reframed=np.inf))
            and fine_of(f) is not None)
        out["evidence"] = evidence
        return out

    def swap_copies(groups) -> dict:
        """A copy of the face swap (each kind) against the real frame as the flagged item."""
        found: dict[str, list] = defaultdict(list)
        listed_found: dict[str, list] = defaultdict(list)
        matched = []
        for g in groups:
            real = next(r for r in g if r["label"] == "real")
            data = read(g, "fake")
            for name, make in COPIES.items():
                query = look(make(data))
                found[name].append(checks(seen(real), query))
                listed_found[name].append(entry_checks(listed(real), query))
                if matches(found[name][-1]) or matches(listed_found[name][-1]):
                    matched.append({
                        "real": real["path"], "copy": name,
                        "face_difference": least(found[name][-1]),
                        "listed_difference": least(listed_found[name][-1]),
                        "service": matches(found[name][-1]),
                        "hash_list": matches(listed_found[name][-1]),
                        **swap_evidence(look, read(g, "real"), data)})
        out = {name: {"pairs": len(d), "matches": sweep(d),
                      "hash_list": sweep_listed(listed_found[name])}
               for name, d in found.items()}
        out["matched"] = matched
        return out

    def copied(images) -> dict:
        """Each image against each kind of its copies."""
        copies: dict[str, list] = defaultdict(list)
        listed_copies: dict[str, list] = defaultdict(list)
        missed: dict[str, list] = defaultdict(list)
        for r in images:
            data = (args.data / r["path"]).read_bytes()
            for name, make in COPIES.items():
                query = look(make(data))
                found = checks(seen(r), query)
                copies[name].append(found)
                listed_copies[name].append(entry_checks(listed(r), query))
                if not matches(found):
                    missed[name].append(r["path"])
        return {name: {"images": len(d), "matched": sweep(d),
                       "hash_list": sweep_listed(listed_copies[name]),
                       "fine_max": max((fine_of(r) for r in d
                                        if matches(r, Limits(fine=np.inf, fine_reframed=np.inf))
                                        and fine_of(r) is not None), default=None),
                       "missed": missed[name][:10]}
                for name, d in copies.items()}

    def faceless() -> dict:
        """The DFDC frame-and-swap pairs with no face found in either, and copies of DFDC images
        without a found face (the module's docstring)."""
        pairs, alone = [], []
        for g in (g for (s, _), g in groups.items() if len(g) > 1 and s == "dfdc-faces"):
            without = [r for r in g if not look((args.data / r["path"]).read_bytes()).faces]
            alone += without
            if len(without) == len(g):
                pairs.append(tuple(g))
        out = {"images_without_a_face": len(alone),
               "dfdc_frame_and_swap": swap_pairs(pairs) if pairs else {"pairs": 0},
               "copies": copied(rng.sample(alone, min(args.faceless, len(alone))))}
        out["dfdc_frame_and_swap"].pop("closest", None)
        return out

    report = {
        "pdq_max_distance": DEFAULT_MAX_DISTANCE,
        "window_max_distance": DEFAULT_WINDOW_MAX_DISTANCE,
        "face_limits": vars(Limits()),
        "copies": copied(sample),
        "same_person_london_snapshots": pairs_of(
            p for g in people for p in itertools.combinations(g, 2)),
        "same_person_celebrity": pairs_of(celebrity_pairs),
        "dfdc_frame_and_swap": swap_pairs(dfdc),
        "dfdc_swap_copied": swap_copies(dfdc[:args.swap_copies]),
        "random": pairs_of(itertools.combinations(sample, 2)),
        "without_a_face": faceless() if args.faceless else None,
        "images_seen": len(cache), "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

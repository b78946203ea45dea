"""Measure the face finder (BlazeFace) and write the figures into ``models/blazeface.card.json``.

    python -m model_export.facefinder_eval [--data ../shared/data]

* detection rate per source: share of each source's images where a face is found (every image of
  the face cache, `model_export.data`), and the share whose face is large enough to be judged;
* images without faces: background cut-outs of the photos (regions that hold no face: the
  corners away from every found face, at least 96 px) plus synthetic images (noise, gradients,
  stripes, shapes and text), and the share in which a face is (wrongly) found; and the public
  sample photographs of the scikit-image wheel (`model_export.sample_photos`): which of the two
  with a person and which of the twenty without one get a face;
* the served finder (with its confirmation pass) on every 4th image of each source: the share
  with a face, and how many faces the first pass found that the confirmation dropped;
* speed: mean milliseconds per image at 224, 512, 1024 and 1600 px (one thread, the service's
  call `FaceFinder.find`).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import cv2
import numpy as np

from model_export import common, sample_photos
from model_export.data import Cache
from service.detection import faces, preprocess

CARD = common.MODELS_DIR / "blazeface.card.json"


def synthetic_no_face(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(96, 700, 2))
        kind = i % 5
        if kind == 0:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == 1:
            g = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
            img = np.broadcast_to(g * rng.uniform(0.2, 1, 3), (h, w, 3)).astype(np.uint8)
        elif kind == 2:
            img = np.zeros((h, w, 3), np.uint8)
            period = int(rng.integers(4, 40))
            img[(np.arange(h) // period) % 2 == 1] = rng.integers(0, 256, 3)
        elif kind == 3:
            img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
            for _ in range(12):
                c = tuple(int(v) for v in rng.integers(0, 256, 3))
                center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.circle(img, center, int(rng.integers(5, max(6, min(h, w) // 3))), c, -1)
        else:
            img = np.full((h, w, 3), 245, np.uint8)
            for k in range(8):
                cv2.putText(img, "Realcheck 0123 news", (5, 30 + 35 * k), cv2.FONT_HERSHEY_SIMPLEX,
                            0.8, (20, 20, 20), 2)
        out.append(np.ascontiguousarray(img))
    return out


def background_cutouts(cache: Cache, finder: faces.FaceFinder, n: int, rng) -> list[np.ndarray]:
    """Corners of real photos away from every found face (at least 96 px square)."""
    out = []
    big = [i for i, r in enumerate(cache.records)
           if r.source in ("celebrity-press", "snapshots", "london-canada", "sdfd-sd21")]
    for i in rng.permutation(big):
        if len(out) >= n:
            break
        img = cv2.imread(str(cache.data_dir / cache.records[i].path))
        found = finder.find(img)
        h, w = img.shape[:2]
        for x0, y0, x1, y1 in ((0, 0, w // 3, h // 3), (2 * w // 3, 0, w, h // 3),
                               (0, 2 * h // 3, w // 3, h), (2 * w // 3, 2 * h // 3, w, h)):
            if min(x1 - x0, y1 - y0) < 96:
                continue
            clear = all(f.box[0] > x1 or f.box[0] + f.box[2] < x0 or f.box[1] > y1
                        or f.box[1] + f.box[3] < y0 for f in found)
            if clear:
                out.append(np.ascontiguousarray(img[y0:y1, x0:x1]))
    return out[:n]


def speed(finder: faces.FaceFinder, cache: Cache, sides=(224, 512, 1024, 1600), reps: int = 30):
    """Median CPU ms of one `find` (one thread: the CPU time is what it costs, also on a loaded
    machine) and the median wall ms, on a London lab photo resized to each side."""
    img = cv2.imread(str(cache.data_dir / next(r.path for r in cache.records
                                                if r.source == "london-canada")))
    cpu, wall = {}, {}
    for side in sides:
        h, w = img.shape[:2]
        f = side / max(h, w)
        x = cv2.resize(img, (round(w * f), round(h * f)))
        for _ in range(3):
            finder.find(x)
        c, t = [], []
        for _ in range(reps):
            c0, t0 = time.process_time(), time.perf_counter()
            finder.find(x)
            c.append(time.process_time() - c0)
            t.append(time.perf_counter() - t0)
        cpu[str(side)] = round(float(np.median(c)) * 1000, 2)
        wall[str(side)] = round(float(np.median(t)) * 1000, 2)
    return cpu, wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.parse_args(argv)
    cache = Cache(common.SPEC)
    finder = faces.FaceFinder()
    per = {}
    judged = cache.found & (cache.face_side >= common.SPEC["min_face"])
    for s in sorted(set(cache.sources)):
        m = cache.sources == s
        per[s] = {"images": int(m.sum()), "face_found": round(float(cache.found[m].mean()), 4),
                  "judged": round(float(judged[m].mean()), 4),
                  "several_faces": round(float((cache.n_faces[m] > 1).mean()), 4)}
    # the served finder (with its confirmation pass) on every 4th image: the cache holds the
    # first pass's faces, so this is what the confirmation costs each source
    for s in per:
        idx = np.flatnonzero(cache.sources == s)[::4]
        now = [bool(finder.find(cv2.imread(str(cache.data_dir / cache.records[i].path))))
               for i in idx]
        per[s]["face_found_served_every_4th"] = round(float(np.mean(now)), 4)
        per[s]["lost_by_confirmation_every_4th"] = int(
            sum(bool(cache.found[i]) and not f for i, f in zip(idx, now)))
    sample = {}
    for kind, names in (("with_faces", sample_photos.WITH_FACES),
                        ("without_faces", sample_photos.WITHOUT_FACES)):
        found = {n: bool(finder.find(preprocess.decode_image(b)))
                 for n, b in sample_photos.images(names).items()}
        sample[kind] = {"n": len(found), "face_found": [n for n, f in found.items() if f]}
    rng = np.random.default_rng(0)
    synth = synthetic_no_face(200, rng)
    cut = background_cutouts(cache, finder, 300, rng)
    fp_s = float(np.mean([bool(finder.find(x)) for x in synth]))
    fp_c = float(np.mean([bool(finder.find(x)) for x in cut]))
    cpu_ms, wall_ms = speed(finder, cache)
    card = json.loads(CARD.read_text())
    card["metrics"] = {
        "detection_rate_per_source": per,
        "images_without_faces": {
            "synthetic": {"n": len(synth), "face_found": round(fp_s, 4)},
            "photo_backgrounds": {"n": len(cut), "face_found": round(fp_c, 4)},
            "scikit_image_samples": sample,
        },
        "ms_per_image_one_thread": cpu_ms,
        "wall_ms_per_image_one_thread": wall_ms,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "command": "python -m model_export.facefinder_eval",
    }
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["metrics"], indent=2))


if __name__ == "__main__":
    main()

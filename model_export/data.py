"""Dataset manifest and the face-crop cache.

Every image of ``../shared/data`` goes through the service's own path once: decode ->
`faces.find_faces` -> `crop_face` with the card's margin around the largest face (or the whole
image when no face is found, exactly as the service does) -> resize. The result is kept as compact
uint8 arrays under the git-ignored ``model_export/cache/`` (the images themselves never enter the
repository):

* ``serve{face_size}.npy``: the face resized to ``face_size`` exactly as `face_views` does it;
  evaluation takes its views from these, so validation/test figures are the service's figures.
* ``train{TRAIN_SIDE}.npy``: the same face at a larger side, the raw material of training-time
  augmentation (random framing, rescale, JPEG, blur ...), which ends in a ``face_size`` face too.

    python -m model_export.data --data ../shared/data      # build (2 processes, ~5 min)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import cv2  # noqa: E402  (after preprocess, which sets the OpenCV pixel limit)
import numpy as np  # noqa: E402

from service.detection import faces, preprocess

ROOT = Path(__file__).resolve().parent
CACHE_DIR = ROOT / "cache"
DEFAULT_DATA = (ROOT.parent.parent / "shared" / "data").resolve()
TRAIN_SIDE = 160
SOURCES = ["dfdc-faces", "tpdne-unsplash", "gan-faces-extra", "sdfd-sd21", "utkface"]


@dataclass
class Record:
    path: str
    label: int  # 1 = fake
    source: str
    split: str
    group: str


def read_manifest(data_dir: Path) -> list[Record]:
    with open(Path(data_dir) / "manifest.csv", newline="") as f:
        return [
            Record(r["path"], int(r["label"] == "fake"), r["source"], r["split"], r["group"])
            for r in csv.DictReader(f)
        ]


def face_crop_for_service(image: np.ndarray, margin: float):
    """The face the service would score first: largest Haar face with margin, else the image."""
    boxes = faces.find_faces(image)
    if boxes:
        crop, (x0, y0, x1, y1) = preprocess.crop_face(image, boxes[0], margin)
        return crop, (x0, y0, x1, y1)
    h, w = image.shape[:2]
    return image, (-1, -1, -1, -1)


def _work(args):
    path, margin, face_size = args
    cv2.setNumThreads(1)
    image = preprocess.decode_image(Path(path).read_bytes())
    crop, box = face_crop_for_service(image, margin)
    serve = preprocess.resize_square(crop, face_size)
    train = preprocess.resize_square(crop, TRAIN_SIDE)
    return serve, train, box, image.shape[:2]


def cache_paths(margin: float, face_size: int) -> dict[str, Path]:
    d = CACHE_DIR / f"m{margin:g}_f{face_size}"
    return {
        "dir": d,
        "serve": d / f"serve{face_size}.npy",
        "train": d / f"train{TRAIN_SIDE}.npy",
        "meta": d / "meta.json",
    }


def build_cache(data_dir: Path, margin: float, face_size: int, processes: int = 2) -> Path:
    p = cache_paths(margin, face_size)
    if p["meta"].exists():
        return p["dir"]
    p["dir"].mkdir(parents=True, exist_ok=True)
    recs = read_manifest(data_dir)
    n = len(recs)
    serve = np.lib.format.open_memmap(
        p["serve"].with_suffix(".tmp.npy"), "w+", np.uint8, (n, face_size, face_size, 3)
    )
    train = np.lib.format.open_memmap(
        p["train"].with_suffix(".tmp.npy"), "w+", np.uint8, (n, TRAIN_SIDE, TRAIN_SIDE, 3)
    )
    boxes = np.zeros((n, 4), np.int32)
    sizes = np.zeros((n, 2), np.int32)
    t0 = time.time()
    jobs = [(str(Path(data_dir) / r.path), margin, face_size) for r in recs]
    with Pool(processes) as pool:
        for i, (s, t, b, hw) in enumerate(pool.imap(_work, jobs, chunksize=32)):
            serve[i], train[i], boxes[i], sizes[i] = s, t, b, hw
            if i % 2000 == 0:
                print(f"{i}/{n} {time.time() - t0:.0f}s", flush=True)
    serve.flush()
    train.flush()
    del serve, train
    os.replace(p["serve"].with_suffix(".tmp.npy"), p["serve"])
    os.replace(p["train"].with_suffix(".tmp.npy"), p["train"])
    np.save(p["dir"] / "boxes.npy", boxes)
    np.save(p["dir"] / "sizes.npy", sizes)
    meta = {
        "data_dir": str(data_dir),
        "margin": margin,
        "face_size": face_size,
        "train_side": TRAIN_SIDE,
        "records": [r.__dict__ for r in recs],
        "faces_found": int((boxes[:, 0] >= 0).sum()),
        "seconds": round(time.time() - t0, 1),
    }
    p["meta"].write_text(json.dumps(meta))
    print(f"cache built: {n} images, {meta['faces_found']} with a face, {meta['seconds']}s")
    return p["dir"]


class Cache:
    """The cached faces, loaded (memory-mapped) with their labels, sources and splits."""

    def __init__(self, margin: float, face_size: int):
        p = cache_paths(margin, face_size)
        meta = json.loads(p["meta"].read_text())
        self.meta = meta
        self.records = [Record(**r) for r in meta["records"]]
        self.serve = np.load(p["serve"], mmap_mode="r")
        self.train = np.load(p["train"], mmap_mode="r")
        self.boxes = np.load(p["dir"] / "boxes.npy")
        self.labels = np.array([r.label for r in self.records], np.int64)
        self.sources = np.array([r.source for r in self.records])
        self.splits = np.array([r.split for r in self.records])
        self.data_dir = Path(meta["data_dir"])

    def index(self, split: str, exclude_source: str | None = None, only_source: str | None = None):
        m = self.splits == split
        if exclude_source:
            m &= self.sources != exclude_source
        if only_source:
            m &= self.sources == only_source
        return np.flatnonzero(m)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--face-size", type=int, default=128)
    ap.add_argument("--processes", type=int, default=2)
    a = ap.parse_args(argv)
    print(build_cache(a.data.resolve(), a.margin, a.face_size, a.processes))


if __name__ == "__main__":
    main()

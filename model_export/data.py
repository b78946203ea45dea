"""Dataset manifest and the face-crop cache.

Every image of ``../shared/data`` goes through the service's own face path once: decode ->
`faces.find_faces` (BlazeFace) -> `preprocess.align_face` on the largest face. Images where no
face is found are kept in the records (the face finder's detection rate is reported from them) but
are left out of training and of the detectors' figures, as the service does not judge them. The
result is kept as compact uint8 arrays under the git-ignored ``model_export/cache/`` (the images
themselves never enter the repository):

* ``serve{face_size}.npy``: the aligned face exactly as the service cuts it; evaluation takes its
  views from these, so validation/test figures are the service's figures.
* ``train{TRAIN_SIDE}.npy``: the same alignment with ``TRAIN_ZOOM`` times the context, the raw
  material of training-time augmentation (random framing, rotation, rescale, JPEG, blur ...).

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
CACHE_DIR = Path(os.environ.get("REALCHECK_CACHE_DIR", ROOT / "cache"))  # elsewhere: gpu_pack
DEFAULT_DATA = (ROOT.parent.parent / "shared" / "data").resolve()
TRAIN_SIDE = 160
TRAIN_ZOOM = 1.25
SOURCES = ["dfdc-faces", "tpdne-unsplash", "gan-faces-extra", "sdfd-sd21", "utkface",
           "celebrity-press", "snapshots", "london-canada"]


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


def main_face(found):
    """The face a labelled image is about: the largest one."""
    return max(found, key=lambda f: f.box[2] * f.box[3]) if found else None


def _work(args):
    path, spec_dict = args
    cv2.setNumThreads(1)
    spec = preprocess.InputSpec.from_card(spec_dict)
    image = preprocess.decode_image(Path(path).read_bytes())
    found = faces.find_faces(image)
    face = main_face(found)
    if face is None:
        blank = np.zeros((spec.face_size, spec.face_size, 3), np.uint8)
        return blank, np.zeros((TRAIN_SIDE, TRAIN_SIDE, 3), np.uint8), (-1.0, 0, 0.0), image.shape[:2]
    serve, frame = preprocess.align_face(image, face.keypoints, spec)
    train, _ = preprocess.align_face(image, face.keypoints, spec, TRAIN_SIDE, TRAIN_ZOOM)
    side = preprocess.frame_side(frame, spec.face_size)
    return serve, train, (side, len(found), face.score), image.shape[:2]


# bump when the face path changes (3: short model on a padded image, back model only adds faces)
CACHE_VERSION = 3


def cache_key(spec: dict) -> str:
    return f"bf{CACHE_VERSION}_s{spec['face_scale']:g}_e{spec['eye_y']:g}_f{spec['face_size']}"


def cache_paths(spec: dict) -> dict[str, Path]:
    d = CACHE_DIR / cache_key(spec)
    face_size = spec["face_size"]
    return {
        "dir": d,
        "serve": d / f"serve{face_size}.npy",
        "train": d / f"train{TRAIN_SIDE}.npy",
        "meta": d / "meta.json",
    }


def build_cache(data_dir: Path, spec: dict, processes: int = 2) -> Path:
    p = cache_paths(spec)
    face_size = spec["face_size"]
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
    info = np.zeros((n, 3), np.float32)  # face side in image pixels (-1: none), faces, score
    sizes = np.zeros((n, 2), np.int32)
    t0 = time.time()
    jobs = [(str(Path(data_dir) / r.path), spec) for r in recs]
    with Pool(processes) as pool:
        for i, (s, t, b, hw) in enumerate(pool.imap(_work, jobs, chunksize=32)):
            serve[i], train[i], info[i], sizes[i] = s, t, b, hw
            if i % 2000 == 0:
                print(f"{i}/{n} {time.time() - t0:.0f}s", flush=True)
    serve.flush()
    train.flush()
    del serve, train
    os.replace(p["serve"].with_suffix(".tmp.npy"), p["serve"])
    os.replace(p["train"].with_suffix(".tmp.npy"), p["train"])
    np.save(p["dir"] / "faces.npy", info)
    np.save(p["dir"] / "sizes.npy", sizes)
    meta = {
        "data_dir": str(data_dir),
        "spec": spec,
        "train_side": TRAIN_SIDE,
        "train_zoom": TRAIN_ZOOM,
        "records": [r.__dict__ for r in recs],
        "faces_found": int((info[:, 0] >= 0).sum()),
        "seconds": round(time.time() - t0, 1),
    }
    p["meta"].write_text(json.dumps(meta))
    print(f"cache built: {n} images, {meta['faces_found']} with a face, {meta['seconds']}s")
    return p["dir"]


class Cache:
    """The cached faces, loaded (memory-mapped) with their labels, sources and splits."""

    def __init__(self, spec: dict):
        p = cache_paths(spec)
        meta = json.loads(p["meta"].read_text())
        self.meta = meta
        self.records = [Record(**r) for r in meta["records"]]
        self.serve = np.load(p["serve"], mmap_mode="r")
        self.train = np.load(p["train"], mmap_mode="r")
        info = np.load(p["dir"] / "faces.npy")
        self.face_side, self.n_faces, self.face_score = info[:, 0], info[:, 1], info[:, 2]
        self.found = self.face_side >= 0
        self.labels = np.array([r.label for r in self.records], np.int64)
        self.sources = np.array([r.source for r in self.records])
        self.splits = np.array([r.split for r in self.records])
        self.data_dir = Path(meta["data_dir"])

    def index(self, split: str, exclude_source: str | None = None, only_source: str | None = None,
              judged: bool = True):
        """Records of a split; ``judged``: only faces the service would judge (found, not too
        small)."""
        m = self.splits == split
        if judged:
            m &= self.found & (self.face_side >= self.meta["spec"]["min_face"])
        if exclude_source:
            m &= self.sources != exclude_source
        if only_source:
            m &= self.sources == only_source
        return np.flatnonzero(m)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--processes", type=int, default=2)
    a = ap.parse_args(argv)
    from model_export import common

    print(build_cache(a.data.resolve(), common.SPEC, a.processes))


if __name__ == "__main__":
    main()

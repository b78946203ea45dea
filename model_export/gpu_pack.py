"""The face cache, packed small enough to carry to a GPU machine (the device tool's 64 MiB).

    python -m model_export.gpu_pack pack --out .gpu --parts 2     # here: .gpu/part1, .gpu/part2
    python -m model_export.gpu_pack unpack PART [PART ...]        # there: rebuilds the cache

Only the training crops (``train160.npy``) travel, JPEG-encoded at quality 90 and split into parts
of about equal size (one part per device call). Training already re-encodes every face as JPEG at
a random quality, so the detectors are taught to ignore such artefacts. The service crops are not
carried: `unpack` cuts them from the training crops (the same alignment with 1/``TRAIN_ZOOM`` of
the context, area-resized to the face size), one resampling away from the service's own cut.
Figures from such crops are marked as such; the shipped figures come from the cache itself.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from model_export import common
from model_export.data import TRAIN_SIDE, TRAIN_ZOOM, cache_paths

QUALITY = 90


def serve_from_train(train: np.ndarray, face_size: int) -> np.ndarray:
    """Service-sized crops cut from training crops (n, TRAIN_SIDE, TRAIN_SIDE, 3)."""
    side = round(TRAIN_SIDE / TRAIN_ZOOM)
    o = (TRAIN_SIDE - side) // 2
    return np.stack([cv2.resize(t[o:o + side, o:o + side], (face_size, face_size),
                                interpolation=cv2.INTER_AREA) for t in train])


def pack(out: Path, parts: int, quality: int = QUALITY) -> list[Path]:
    p = cache_paths(common.SPEC)
    train = np.load(p["train"], mmap_mode="r")
    blobs = [cv2.imencode(".jpg", np.asarray(t), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
             for t in train]
    sizes = np.array([len(b) for b in blobs])
    bounds = np.searchsorted(np.cumsum(sizes), np.arange(1, parts) * sizes.sum() / parts)
    dirs = []
    for k, rows in enumerate(np.split(np.arange(len(blobs)), bounds), 1):
        d = out / f"part{k}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        offsets = np.concatenate([[0], np.cumsum(sizes[rows])])
        (d / "crops.bin").write_bytes(b"".join(blobs[i] for i in rows))
        np.save(d / "index.npy", np.stack([rows, offsets[:-1], sizes[rows]], 1))
        if k == 1:  # the records, face sizes and image sizes travel with the first part
            (d / "meta.json.gz").write_bytes(gzip.compress(p["meta"].read_bytes()))
            for f in ("faces.npy", "sizes.npy"):
                shutil.copy(p["dir"] / f, d / f)
        dirs.append(d)
    return dirs


def _decode(blob: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)


def unpack(parts: list[Path], processes: int = 8) -> Path:
    p = cache_paths(common.SPEC)
    first = next(d for d in parts if (d / "meta.json.gz").exists())
    meta = gzip.decompress((first / "meta.json.gz").read_bytes())
    n = len(json.loads(meta)["records"])
    p["dir"].mkdir(parents=True, exist_ok=True)
    train = np.lib.format.open_memmap(p["train"], "w+", np.uint8, (n, TRAIN_SIDE, TRAIN_SIDE, 3))
    seen = np.zeros(n, bool)
    with Pool(processes) as pool:
        for d in parts:
            index = np.load(d / "index.npy")
            data = (d / "crops.bin").read_bytes()
            blobs = [data[o:o + s] for _, o, s in index]
            train[index[:, 0]] = np.stack(pool.map(_decode, blobs, chunksize=64))
            seen[index[:, 0]] = True
    if not seen.all():
        raise SystemExit(f"{(~seen).sum()} of {n} faces are in none of the parts given")
    train.flush()
    np.save(p["serve"], serve_from_train(train, common.SPEC["face_size"]))
    p["meta"].write_bytes(meta)
    for f in ("faces.npy", "sizes.npy"):
        shutil.copy(first / f, p["dir"] / f)
    return p["dir"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a_pack = sub.add_parser("pack")
    a_pack.add_argument("--out", type=Path, default=Path(".gpu"))
    a_pack.add_argument("--parts", type=int, default=2)
    a_pack.add_argument("--quality", type=int, default=QUALITY)
    a_unpack = sub.add_parser("unpack")
    a_unpack.add_argument("parts", type=Path, nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        for d in pack(a.out, a.parts, a.quality):
            print(d, sum(f.stat().st_size for f in d.iterdir()), "bytes")
    else:
        print("cache rebuilt in", unpack(a.parts))


if __name__ == "__main__":
    main()

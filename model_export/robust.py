"""Degraded copies of the test images, cut through the full service path (for robustness figures).

Each condition is applied to the *whole* original image, then the service path runs again
(`find_faces` on the degraded image -> `crop_face` -> resize), so the figure includes the face
finder's own failures under degradation:

* ``jpeg50`` / ``jpeg75``: JPEG re-encoding at quality 50 / 75;
* ``half``: downscaled to half width and height (area filter);
* ``screenshot``: what a screenshot of the image on a HiDPI screen, shared again, looks like:
  upscaled x1.5 (bilinear, as a browser renders it), PNG round trip, then JPEG quality 85 as chat
  and social sites re-encode uploads.

    python -m model_export.robust   # 2 processes, ~5 min -> model_export/cache/*/robust_test.npy
"""

from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model_export import common
from model_export.data import Cache, cache_paths, face_crop_for_service
from service.detection import preprocess

CONDITIONS = ["jpeg50", "jpeg75", "half", "screenshot"]


def _jpeg(img, q):
    return cv2.imdecode(
        cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR
    )


def degrade_image(img: np.ndarray, condition: str) -> np.ndarray:
    if condition == "jpeg50":
        return _jpeg(img, 50)
    if condition == "jpeg75":
        return _jpeg(img, 75)
    if condition == "half":
        h, w = img.shape[:2]
        return cv2.resize(img, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    if condition == "screenshot":
        h, w = img.shape[:2]
        up = cv2.resize(img, (int(w * 1.5), int(h * 1.5)), interpolation=cv2.INTER_LINEAR)
        png = cv2.imdecode(cv2.imencode(".png", up)[1], cv2.IMREAD_COLOR)
        return _jpeg(png, 85)
    raise ValueError(condition)


def _work(args):
    path, margin, face_size = args
    cv2.setNumThreads(1)
    img = preprocess.decode_image(Path(path).read_bytes())
    out = []
    for c in CONDITIONS:
        crop, _ = face_crop_for_service(degrade_image(img, c), margin)
        out.append(preprocess.resize_square(crop, face_size))
    return np.stack(out)


def robust_path(margin: float, face_size: int) -> Path:
    return cache_paths(margin, face_size)["dir"] / "robust_test.npy"


def build(processes: int = 2, split: str = "test") -> Path:
    margin, fs = common.SPEC["face_margin"], common.SPEC["face_size"]
    out = robust_path(margin, fs)
    if out.exists():
        return out
    cache = Cache(margin, fs)
    idx = cache.index(split)
    jobs = [(str(cache.data_dir / cache.records[i].path), margin, fs) for i in idx]
    with Pool(processes) as pool:
        arr = np.stack(list(pool.imap(_work, jobs, chunksize=16)))  # (n, C, fs, fs, 3)
    tmp = out.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.rename(out)
    print(f"wrote {out} {arr.shape}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--processes", type=int, default=2)
    build(ap.parse_args().processes)

"""Changed copies of test images, cut through the full service path (invariance figures).

Each condition is applied to the *whole* original image, then the service's face path runs again
(`faces.find_faces` on the changed image -> the face nearest the original one -> `align_face`),
so the figures include the face finder's own failures:

* re-encoding: ``jpeg50``, ``jpeg75``, ``screenshot`` (x1.5 bilinear as a HiDPI browser renders it,
  PNG round trip, then JPEG q85 as chat and social sites re-encode uploads);
* scale: ``scale0.5`` (area filter), ``scale2`` (bilinear);
* borders of 40 px: ``border_white``, ``border_black``, ``border_mirror``, ``border_noise``;
* ``reframe``: the image placed off-centre on a grey canvas twice its size, as a screenshot of
  a page or a collage frames a photo;
* ``tile``: the image tiled 2x2 into a "group photo" (the top-left copy's face is kept; the
  service scores all four and calls the image as fake as its most fake face).

``EDITS`` are the photo edits people, phones and sites apply (`model_export.photo_edits` measures
them as served; the cards' figures cover ``CONDITIONS``): ``gray``, ``sepia``, ``saturate``,
``warm`` and ``cool`` white balance, ``darken`` and ``brighten`` (gamma), ``contrast``, ``blur``,
``sharpen`` (unsharp mask), ``smooth`` (a beauty filter's edge-preserving skin smoothing),
``noise`` (low light), ``flip`` (mirror) and ``rotate`` (a 10-degree tilt).

    python -m model_export.robust   # -> model_export/cache/<spec>/robust_test.npz
"""

from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from model_export import common
from model_export.data import Cache, cache_paths, main_face
from service.detection import faces, preprocess

CONDITIONS = ["jpeg50", "jpeg75", "screenshot", "scale0.5", "scale2", "border_white",
              "border_black", "border_mirror", "border_noise", "reframe", "tile"]
EDITS = ["gray", "sepia", "saturate", "warm", "cool", "darken", "brighten", "contrast", "blur",
         "sharpen", "smooth", "noise", "flip", "rotate"]
BORDER = 40
SEPIA = np.array([[0.131, 0.534, 0.272], [0.168, 0.686, 0.349], [0.189, 0.769, 0.393]])  # BGR
PER_SOURCE = 120  # test images per source (evenly spread): the figures' sample


def _jpeg(img, q):
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1],
                        cv2.IMREAD_COLOR)


def change_image(img: np.ndarray, condition: str, seed: int = 0):
    """(changed image, 2x3 map from original pixels to changed pixels)."""
    h, w = img.shape[:2]
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    if condition == "jpeg50":
        return _jpeg(img, 50), ident
    if condition == "jpeg75":
        return _jpeg(img, 75), ident
    if condition == "screenshot":
        up = cv2.resize(img, (int(w * 1.5), int(h * 1.5)), interpolation=cv2.INTER_LINEAR)
        png = cv2.imdecode(cv2.imencode(".png", up)[1], cv2.IMREAD_COLOR)
        return _jpeg(png, 85), ident * 1.5
    if condition in ("scale0.5", "scale2"):
        f = 0.5 if condition == "scale0.5" else 2.0
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        out = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)
        return out, ident * f
    if condition.startswith("border_"):
        kind = condition.split("_", 1)[1]
        b = BORDER
        if kind == "noise":
            rng = np.random.default_rng(seed)
            out = rng.integers(0, 256, (h + 2 * b, w + 2 * b, 3), dtype=np.uint8)
            out[b:b + h, b:b + w] = img
        else:
            mode = {"white": cv2.BORDER_CONSTANT, "black": cv2.BORDER_CONSTANT,
                    "mirror": cv2.BORDER_REFLECT}[kind]
            value = (255, 255, 255) if kind == "white" else (0, 0, 0)
            out = cv2.copyMakeBorder(img, b, b, b, b, mode, value=value)
        return out, np.array([[1.0, 0, b], [0, 1.0, b]])
    if condition == "reframe":
        out = np.full((2 * h, 2 * w, 3), 128, np.uint8)
        x0, y0 = w // 4, h // 3
        out[y0:y0 + h, x0:x0 + w] = img
        return out, np.array([[1.0, 0, x0], [0, 1.0, y0]])
    if condition == "tile":
        return np.concatenate([np.concatenate([img, img], 1)] * 2, 0), ident
    if condition in EDITS:
        return photo_edit(img, condition, seed), edit_map(condition, w, h)
    raise ValueError(condition)


def edit_map(condition: str, w: int, h: int) -> np.ndarray:
    if condition == "flip":
        return np.array([[-1.0, 0, w - 1], [0, 1.0, 0]])
    if condition == "rotate":
        return cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0)
    return np.array([[1.0, 0, 0], [0, 1.0, 0]])


def photo_edit(img: np.ndarray, condition: str, seed: int) -> np.ndarray:
    """One of ``EDITS`` applied to the whole image (uint8 BGR in and out)."""
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    if condition == "gray":
        return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if condition == "sepia":
        out = f @ SEPIA.T
    elif condition == "saturate":
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 1] = np.minimum(hsv[..., 1] * 1.6, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    elif condition in ("warm", "cool"):
        gains = np.array([0.85, 1.0, 1.12] if condition == "warm" else [1.12, 1.0, 0.85])
        out = f * gains
    elif condition in ("darken", "brighten"):
        gamma = 1.8 if condition == "darken" else 0.55
        out = 255.0 * (f / 255.0) ** gamma
    elif condition == "contrast":
        out = (f - 128.0) * 1.5 + 128.0
    elif condition == "blur":
        return cv2.GaussianBlur(img, (0, 0), 1.5)
    elif condition == "sharpen":
        out = f + 1.0 * (f - cv2.GaussianBlur(f, (0, 0), 2.0))
    elif condition == "smooth":
        return cv2.bilateralFilter(img, 9, 40, 7)
    elif condition == "noise":
        out = f + np.random.default_rng(seed).normal(0, 8, f.shape)
    elif condition == "flip":
        return np.ascontiguousarray(img[:, ::-1])
    else:  # rotate
        return cv2.warpAffine(img, edit_map(condition, w, h), (w, h),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(out, 0, 255).astype(np.uint8)


def _nearest(found, point):
    return min(found, key=lambda f: float(np.hypot(*(f.keypoints[:2].mean(0) - point))))


def _work(args):
    path, spec_dict = args
    cv2.setNumThreads(1)
    spec = preprocess.InputSpec.from_card(spec_dict)
    img = preprocess.decode_image(Path(path).read_bytes())
    ref = main_face(faces.find_faces(img))
    out = np.zeros((len(CONDITIONS), spec.face_size, spec.face_size, 3), np.uint8)
    found = np.zeros(len(CONDITIONS), bool)
    if ref is None:
        return out, found
    eyes = ref.keypoints[:2].mean(0)
    for j, c in enumerate(CONDITIONS):
        changed, m = change_image(img, c, seed=j)
        fs = faces.find_faces(changed)
        if not fs:
            continue
        f = _nearest(fs, m[:, :2] @ eyes + m[:, 2])
        out[j], _ = preprocess.align_face(changed, f.keypoints, spec)
        found[j] = True
    return out, found


def robust_path(spec: dict) -> Path:
    return cache_paths(spec)["dir"] / "robust_test.npz"


def sample(cache: Cache, split: str = "test", per_source: int = PER_SOURCE) -> np.ndarray:
    """An evenly spread sample of each source's judged faces of ``split`` (indices)."""
    idx = cache.index(split)
    out = []
    for s in sorted(set(cache.sources[idx])):
        own = idx[cache.sources[idx] == s]
        for lab in (0, 1):
            o = own[cache.labels[own] == lab]
            if len(o):
                out.append(o[np.linspace(0, len(o) - 1, min(per_source, len(o))).astype(int)])
    return np.unique(np.concatenate(out))


def build(processes: int = 2, split: str = "test") -> Path:
    out = robust_path(common.SPEC)
    if out.exists():
        return out
    cache = Cache(common.SPEC)
    idx = sample(cache, split)
    jobs = [(str(cache.data_dir / cache.records[i].path), common.SPEC) for i in idx]
    with Pool(processes) as pool:
        res = list(pool.imap(_work, jobs, chunksize=8))
    crops = np.stack([r[0] for r in res])  # (n, C, fs, fs, 3)
    found = np.stack([r[1] for r in res])  # (n, C)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, index=idx, crops=crops, found=found, conditions=np.array(CONDITIONS))
    tmp.rename(out)
    print(f"wrote {out} {crops.shape}; faces found per condition: "
          + ", ".join(f"{c} {found[:, j].mean():.3f}" for j, c in enumerate(CONDITIONS)))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--processes", type=int, default=2)
    build(ap.parse_args().processes)

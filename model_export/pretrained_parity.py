"""Parity of the PyTorch MobileNetV2 port (model_export.pretrained) against nsfwjs's tfjs model.

    (cd model_export/tools && npm ci)            # once: @tensorflow/tfjs + nsfwjs, pinned
    python -m model_export.pretrained            # once: the weight cache
    python -m model_export.pretrained_parity [--data ../shared/data]

Inputs: a seeded pattern and two real faces from the dataset, each in both input ranges
(IMAGENET_INPUT_RANGE and NSFWJS_INPUT_RANGE), at 224 px (block 10 and block 16) and 112 px
(block 10). The reference is model_export/tools/nsfwjs_reference.mjs (tfjs CPU backend).
Exits non-zero when a max abs diff exceeds ``REL_TOL`` x the reference's max abs activation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from model_export import pretrained

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(__file__).resolve().parent / "tools"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
FACES = ("utkface/real", "london-canada/real")  # first file (sorted) of each: two different people
REL_TOL = 1e-3
CASES = ((224, (10, 16)), (112, (10,)))  # (input side, blocks compared)


def face_pixels(data_dir: Path, size: int) -> list[np.ndarray]:
    """RGB uint8 (size, size, 3) crops of the first image of each FACES folder."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 26))
    import cv2

    out = []
    for sub in FACES:
        path = sorted((data_dir / sub).glob("*.jpg"))[0]
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode {path}")
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = cv2.resize(
            img[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA
        )
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return out


def seeded_pixels(size: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB pattern: smooth gradients plus uniform noise, 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, (xx + yy) / 2], -1) * 200
    return np.clip(base + rng.uniform(0, 55, base.shape), 0, 255).astype(np.uint8)


def batch(pixels: list[np.ndarray]) -> torch.Tensor:
    """Every image in both input ranges, NCHW float32."""
    return torch.cat(
        [
            pretrained.normalize(np.stack(pixels), r)
            for r in (pretrained.IMAGENET_INPUT_RANGE, pretrained.NSFWJS_INPUT_RANGE)
        ]
    )


def run_reference(x: torch.Tensor, layers: list[str]) -> dict[str, np.ndarray]:
    """Keras-layer outputs of the tfjs model for NCHW ``x``, returned NCHW."""
    if not (TOOLS / "node_modules" / "nsfwjs").is_dir():
        raise RuntimeError(f"run `npm ci` in {TOOLS} first")
    nhwc = x.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nhwc.tofile(tmp / "in.f32")
        shape = ",".join(map(str, nhwc.shape))
        subprocess.run(
            ["node", "nsfwjs_reference.mjs", str(tmp / "in.f32"), shape, str(tmp / "out"), *layers],
            cwd=TOOLS,
            check=True,
            capture_output=True,
        )
        meta = json.loads((tmp / "out" / "outputs.json").read_text())["outputs"]
        return {
            name: np.fromfile(tmp / "out" / m["file"], "<f4").reshape(m["shape"]).transpose(0, 3, 1, 2)
            for name, m in meta.items()
        }


def compare(data_dir: Path | None = DEFAULT_DATA, cases=CASES) -> list[dict]:
    """One row per (input size, block): shapes, max abs diff, reference scale.

    ``data_dir=None``: two seeded patterns instead of the seeded pattern and two faces.
    """
    torch.set_num_threads(1)
    uptos_all = sorted({u for _, uptos in cases for u in uptos})
    ports = {u: pretrained.load_imagenet(pretrained.MobileNetV2Blocks(upto=u)) for u in uptos_all}
    rows = []
    for size, uptos in cases:
        extra = face_pixels(data_dir, size) if data_dir else [seeded_pixels(size, seed=1)]
        x = batch([seeded_pixels(size), *extra])
        ref = run_reference(x, [f"{pretrained.BLOCKS[u].prefix}_project_BN" for u in uptos])
        for u in uptos:
            with torch.no_grad():
                ours = ports[u](x).numpy()
            theirs = ref[f"{pretrained.BLOCKS[u].prefix}_project_BN"]
            if ours.shape != theirs.shape:
                raise AssertionError(f"block {u} at {size}: shape {ours.shape} != {theirs.shape}")
            diff = float(np.abs(ours - theirs).max())
            scale = float(np.abs(theirs).max())
            rows.append(
                {
                    "input": list(x.shape),
                    "block": u,
                    "shape": list(ours.shape),
                    "max_abs_diff": diff,
                    "ref_max_abs": scale,
                    "rel": diff / scale,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    rows = compare(args.data)
    for r in rows:
        print(
            f"input {r['input']} block {r['block']:2d} -> {r['shape']}: max abs diff {r['max_abs_diff']:.3g} "
            f"(reference max |a| {r['ref_max_abs']:.3g}, relative {r['rel']:.2g})"
        )
    worst = max(r["rel"] for r in rows)
    print(f"{'OK' if worst <= REL_TOL else 'FAIL'}: worst relative diff {worst:.2g} (tolerance {REL_TOL})")
    return 0 if worst <= REL_TOL else 1


if __name__ == "__main__":
    sys.exit(main())

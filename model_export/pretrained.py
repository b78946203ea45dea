"""ImageNet MobileNetV2 features (Keras blocks 0-10) taken from the npm package ``nsfwjs@4.4.0``.

    python -m model_export.pretrained        # fetch: writes model_export/cache/nsfwjs_mobilenet_v2.npz

Provenance and licence: nsfwjs (MIT, Infinite Red / Gant Laborde) ships a tfjs LayersModel
``dist/models/mobilenet_v2`` converted from a Keras 2.2.4 ``keras.applications.MobileNetV2``
(alpha 1.0, 224 px) whose ImageNet weights (Keras applications) were fine-tuned on NSFW classes.
Its ``model.json`` marks every layer up to ``block_10_project_BN`` ``trainable: false``: blocks 0-10
keep their ImageNet kernels and BN scale/offset (their BN moving statistics were re-estimated on
nsfwjs's [0, 1] inputs, see INPUT_RANGE); blocks 11-16, ``Conv_1`` and the dense head were fine-tuned. (The
package's other MobileNet, ``mobilenet_v2_mid``, is a frozen TF-Hub graph without Keras layers.)
The tfjs converter stored every weight as uint8 with a per-tensor affine (``q * scale + min``),
so these are 8-bit approximations of the Keras ImageNet weights, dequantised exactly as tfjs does.

``fetch`` needs ``npm`` and ``node`` (both only to read the package; nothing runs at service time).
The PyTorch port below is written from the model.json topology; parity against tfjs is checked by
``python -m model_export.pretrained_parity``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PACKAGE = "nsfwjs@4.4.0"
TARBALL_SHA256 = "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382"
MODEL_DIR = "package/dist/models/mobilenet_v2"
CACHE_DIR = Path(__file__).resolve().parent / "cache"
NPZ_NAME = "nsfwjs_mobilenet_v2.npz"
BN_EPS = 1e-3  # Keras BatchNormalization epsilon in the model.json

# Input: RGB, NCHW float32, pixels / 255 -> [0, 1] (INPUT_RANGE), exactly what nsfwjs feeds.
# Keras's own ImageNet MobileNetV2 convention is [-1, 1] (``x / 127.5 - 1``, IMAGENET_INPUT_RANGE),
# but the BatchNorm moving statistics shipped here fit [0, 1]: on 20 real faces the first BN's batch
# mean lies 0.06 running-sd from its moving mean with [0, 1] input and 0.67 with [-1, 1] (variance
# log-ratio 0.11 vs 0.71), so nsfwjs's training re-estimated them on [0, 1] inputs. Since conv + BN
# is affine, the network fed [0, 1] with these statistics computes (up to zero-padded borders) what
# the ImageNet original computed on [-1, 1].
NSFWJS_INPUT_RANGE = (0.0, 1.0)
IMAGENET_INPUT_RANGE = (-1.0, 1.0)
INPUT_RANGE = NSFWJS_INPUT_RANGE


def normalize(pixels: np.ndarray | torch.Tensor, value_range=INPUT_RANGE) -> torch.Tensor:
    """uint8-scale RGB pixels (values 0..255) -> float32 NCHW in ``value_range``.

    Accepts HWC, NHWC or NCHW (a last axis of 3 with a second axis that is not 3 means NHWC).
    """
    x = torch.as_tensor(np.asarray(pixels) if not isinstance(pixels, torch.Tensor) else pixels)
    x = x.to(torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    lo, hi = value_range
    return (x * ((hi - lo) / 255.0) + lo).contiguous()


@dataclass(frozen=True)
class BlockSpec:
    """One Keras inverted-residual block: name prefix, channels, expansion, stride."""

    prefix: str
    cin: int
    cout: int
    expand: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.cin == self.cout


def _block_specs() -> list[BlockSpec]:
    """Keras MobileNetV2, alpha 1.0: block 0 is ``expanded_conv`` (no expansion), then 1..16."""
    specs = [BlockSpec("expanded_conv", 32, 16, 1, 1)]
    cin, index = 16, 1
    for expand, cout, repeats, stride in (
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ):
        for r in range(repeats):
            specs.append(BlockSpec(f"block_{index}", cin, cout, expand, stride if r == 0 else 1))
            cin, index = cout, index + 1
    return specs


BLOCKS = _block_specs()
STRIDE2_PAD = (0, 1, 0, 1)  # Keras ZeroPadding2D ((0, 1), (0, 1)) before every stride-2 conv (F.pad order)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class InvertedResidual(nn.Module):
    """expand 1x1 -> BN -> ReLU6 -> depthwise 3x3 -> BN -> ReLU6 -> project 1x1 -> BN (+ input)."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        hidden = spec.cin * spec.expand
        if spec.expand != 1:
            self.expand = nn.Conv2d(spec.cin, hidden, 1, bias=False)
            self.expand_bn = _bn(hidden)
        # stride 1: Keras 'same' = 1 pixel each side; stride 2: explicit asymmetric pad in forward.
        self.depthwise = nn.Conv2d(
            hidden,
            hidden,
            3,
            stride=spec.stride,
            padding=1 if spec.stride == 1 else 0,
            groups=hidden,
            bias=False,
        )
        self.depthwise_bn = _bn(hidden)
        self.project = nn.Conv2d(hidden, spec.cout, 1, bias=False)
        self.project_bn = _bn(spec.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.spec.expand != 1:
            y = F.relu6(self.expand_bn(self.expand(y)))
        if self.spec.stride == 2:
            y = F.pad(y, STRIDE2_PAD)
        y = F.relu6(self.depthwise_bn(self.depthwise(y)))
        y = self.project_bn(self.project(y))
        return x + y if self.spec.residual else y


class MobileNetV2Blocks(nn.Module):
    """Keras MobileNetV2 (alpha 1.0) stem + blocks ``0..upto``; NCHW in (see INPUT_RANGE), NCHW out.

    Output of block 10: ``out_channels`` = 96 channels at 1/16 of the input side, rounded up
    (224 -> 14, 112 -> 7, 96 -> 6). Untrained until ``load_imagenet(module)``. Stride-2 convs pad
    one pixel right and bottom whatever the input size, as the model.json's ZeroPadding2D layers do.
    """

    def __init__(self, upto: int = 10):
        super().__init__()
        if not 0 <= upto < len(BLOCKS):
            raise ValueError(f"upto must be in 0..{len(BLOCKS) - 1}")
        self.upto = upto
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self.conv1_bn = _bn(32)
        self.blocks = nn.Sequential(*(InvertedResidual(s) for s in BLOCKS[: upto + 1]))
        self.out_channels = BLOCKS[upto].cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.conv1_bn(self.conv1(F.pad(x, STRIDE2_PAD))))
        return self.blocks(x)


# ---------------------------------------------------------------- loading the weights


def _keras_modules(model: MobileNetV2Blocks):
    """(Keras layer name, torch conv, torch BN) for every conv of ``model``."""
    yield "Conv1", model.conv1, "bn_Conv1", model.conv1_bn
    for block in model.blocks:
        p = block.spec.prefix
        if block.spec.expand != 1:
            yield f"{p}_expand", block.expand, f"{p}_expand_BN", block.expand_bn
        yield f"{p}_depthwise", block.depthwise, f"{p}_depthwise_BN", block.depthwise_bn
        yield f"{p}_project", block.project, f"{p}_project_BN", block.project_bn


def _check_topology(layers: list[dict], upto: int) -> None:
    """Refuse weights whose Keras topology differs from what the port hard-codes."""
    by_name = {layer["config"]["name"]: layer for layer in layers}
    for spec in BLOCKS[: upto + 1]:
        dw = by_name[f"{spec.prefix}_depthwise"]["config"]
        want_pad = "valid" if spec.stride == 2 else "same"
        if dw["strides"] != [spec.stride] * 2 or dw["padding"] != want_pad or dw["kernel_size"] != [3, 3]:
            raise ValueError(f"{spec.prefix}_depthwise: unexpected config {dw}")
        if spec.stride == 2:
            pad = by_name[f"{spec.prefix}_pad"]["config"]["padding"]
            if pad != [[0, 1], [0, 1]]:
                raise ValueError(f"{spec.prefix}_pad: padding {pad}, port assumes [[0, 1], [0, 1]]")
        if spec.residual and f"{spec.prefix}_add" not in by_name:
            raise ValueError(f"{spec.prefix}: residual add missing")
    if by_name["Conv1_pad"]["config"]["padding"] != [[0, 1], [0, 1]]:
        raise ValueError("Conv1_pad: unexpected padding")
    for layer in layers:
        cfg = layer["config"]
        if layer["class_name"] == "BatchNormalization" and abs(cfg["epsilon"] - BN_EPS) > 1e-9:
            raise ValueError(f"{cfg['name']}: epsilon {cfg['epsilon']}")
        if layer["class_name"] == "ReLU" and cfg.get("max_value") != 6:
            raise ValueError(f"{cfg['name']}: not ReLU6")


def load_npz(path: Path | None = None) -> tuple[dict[str, np.ndarray], list[dict], dict]:
    """(weights by Keras name, Keras layer configs, provenance) from the fetched cache."""
    path = Path(path) if path else CACHE_DIR / NPZ_NAME
    with np.load(path, allow_pickle=False) as data:
        weights = {k: data[k] for k in data.files if not k.startswith("__")}
        layers = json.loads(str(data["__layers__"]))
        provenance = json.loads(str(data["__provenance__"]))
    return weights, layers, provenance


def load_imagenet(model: MobileNetV2Blocks, path: Path | None = None) -> MobileNetV2Blocks:
    """Fill ``model`` from the cache npz (``fetch`` first); returns it in eval mode."""
    weights, layers, _ = load_npz(path)
    _check_topology(layers, model.upto)
    with torch.no_grad():
        for conv_name, conv, bn_name, bn in _keras_modules(model):
            if conv.groups > 1:  # Keras depthwise kernel: (kh, kw, channels, multiplier=1)
                k = weights[f"{conv_name}/depthwise_kernel"].transpose(2, 3, 0, 1)
                k = k.reshape(-1, 1, *k.shape[2:])
            else:  # Keras conv kernel: (kh, kw, in, out)
                k = weights[f"{conv_name}/kernel"].transpose(3, 2, 0, 1)
            if tuple(k.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{conv_name}: shape {k.shape} != {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(k)))
            bn.weight.copy_(torch.from_numpy(weights[f"{bn_name}/gamma"]))
            bn.bias.copy_(torch.from_numpy(weights[f"{bn_name}/beta"]))
            bn.running_mean.copy_(torch.from_numpy(weights[f"{bn_name}/moving_mean"]))
            bn.running_var.copy_(torch.from_numpy(weights[f"{bn_name}/moving_variance"]))
    return model.eval()


# ---------------------------------------------------------------- fetching from npm


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# nsfwjs's loader does ``(await import("model.min.js")).default`` and the same for each shard (a
# base64 string); the bundles are CommonJS, so node's require reads them the same way.
_DUMP_JS = """
const dir = process.argv[1];
const model = require(dir + "/model.min.js");
const files = model.weightsManifest.flatMap((g) => g.paths);
const shards = Object.fromEntries(files.map((p) => [p, require(dir + "/" + p + ".min.js")]));
process.stdout.write(JSON.stringify({ model, shards }));
"""


def _dequantize(manifest: list[dict], shards: dict[str, str]) -> dict[str, np.ndarray]:
    """tfjs weight decoding: concatenated shards, uint8 ``q * scale + min`` in float64 -> float32."""
    blob = b"".join(base64.b64decode(shards[p]) for group in manifest for p in group["paths"])
    out, offset = {}, 0
    for spec in (w for group in manifest for w in group["weights"]):
        n = int(np.prod(spec["shape"], dtype=np.int64))
        q = spec.get("quantization")
        if q is None:
            values = np.frombuffer(blob, np.float32, n, offset)
            offset += 4 * n
        else:
            if q["dtype"] != "uint8":
                raise ValueError(f"{spec['name']}: quantization {q['dtype']} not handled")
            raw = np.frombuffer(blob, np.uint8, n, offset).astype(np.float64)
            values = (raw * q["scale"] + q["min"]).astype(np.float32)
            offset += n
        out[spec["name"]] = values.reshape(spec["shape"])
    if offset != len(blob):
        raise ValueError(f"weights use {offset} bytes, shards hold {len(blob)}")
    return out


def fetch(dest_dir: Path | str = CACHE_DIR) -> Path:
    """npm pack nsfwjs, check its SHA-256, write ``dest_dir/nsfwjs_mobilenet_v2.npz``; returns it."""
    dest = Path(dest_dir) / NPZ_NAME
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True)
        (tarball,) = tmp.glob("nsfwjs-*.tgz")
        digest = _sha256(tarball)
        if digest != TARBALL_SHA256:
            raise RuntimeError(f"{tarball.name}: SHA-256 {digest}, expected {TARBALL_SHA256}")
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(MODEL_DIR + "/")]
            tar.extractall(tmp, members=members, filter="data")
        dumped = subprocess.run(
            ["node", "-e", _DUMP_JS, str(tmp / MODEL_DIR)], check=True, capture_output=True
        ).stdout
    data = json.loads(dumped)
    model, shards = data["model"], data["shards"]
    weights = _dequantize(model["weightsManifest"], shards)
    topology = model["modelTopology"]
    layers = topology["model_config"]["config"]["layers"]
    frozen = [x["config"]["name"] for x in layers if x["config"].get("trainable") is False]
    provenance = {
        "package": PACKAGE,
        "tarball_sha256": TARBALL_SHA256,
        "files": [f"{MODEL_DIR}/model.min.js"] + [f"{MODEL_DIR}/{p}.min.js" for p in shards],
        "licence": "nsfwjs: MIT; MobileNetV2 ImageNet weights: Keras applications",
        "keras_version": topology.get("keras_version"),
        "weights": "uint8 affine-quantised in the package, dequantised to float32 as tfjs does",
        "imagenet_layers": "frozen (trainable: false) in model.json: Conv1 .. " + frozen[-1],
        "nsfwjs_input": "RGB / 255 (range [0, 1]), 224x224, bilinear align_corners resize",
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest = dest.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp_dest,
        __layers__=np.array(json.dumps(layers)),
        __provenance__=np.array(json.dumps(provenance)),
        **weights,
    )
    tmp_dest.replace(dest)
    return dest


if __name__ == "__main__":
    path = fetch()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")

"""The ImageNet-initialised third detector: a frozen MobileNetV2 (blocks 0-10) and a small head.

The backbone is `pretrained.MobileNetV2Blocks(10)` with the ImageNet weights shipped inside
``nsfwjs@4.4.0`` (`pretrained.fetch`, `pretrained.load_imagenet`); it stays frozen and in eval mode
(its batch-norm statistics never move). Only the head trains (``tune_blocks=0``, the shipped
member): 1x1 conv 96->128, BN, ReLU, 3x3 conv 128->128, BN, ReLU, and the same GAP classifier as
the other detectors (``forward`` returns ``(logit, cam)``, ``logit == mean(cam)``). The input is
the detectors' common input (ImageNet mean/std normalised RGB); the network undoes that
normalisation into the backbone's 0..1 range itself, so the service cuts one set of views for
all members.

``tune_blocks=K`` (a trial: `model_export.train --tune-blocks`) also trains the convolutions of the
backbone's last K blocks; their batch norms stay frozen, so the exported graph is the same.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model_export import pretrained
from model_export.nets import GapHead


class MobileNetDetector(GapHead, nn.Module):
    def __init__(self, hidden: int = 128, load_weights: bool = True, tune_blocks: int = 0,
                 upto: int = 10):
        """``upto`` < 10 (a trial, `common.OPTIONAL_ARCHS["patch"]`): the backbone cut after that
        block and a head of 1x1 convolutions (64 channels), so that each position's logit sees
        only a small patch of the face (the backbone's receptive field there)."""
        super().__init__()
        self.backbone = pretrained.MobileNetV2Blocks(upto)
        if load_weights:
            if not (pretrained.CACHE_DIR / pretrained.NPZ_NAME).exists():
                pretrained.fetch()
            pretrained.load_imagenet(self.backbone)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.tune_blocks = tune_blocks
        for block in self.backbone.blocks[len(self.backbone.blocks) - tune_blocks:]:
            for name, p in block.named_parameters():
                if "_bn" not in name:
                    p.requires_grad_(True)
        c = self.backbone.out_channels
        lo, hi = pretrained.INPUT_RANGE
        # pixels p in 0..1 were normalised as (p - MEAN) / STD; the backbone wants lo + p (hi - lo)
        from model_export.common import SPEC

        mean = torch.tensor(SPEC["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(SPEC["std"]).view(1, 3, 1, 1)
        self.register_buffer("in_scale", std * (hi - lo))
        self.register_buffer("in_shift", mean * (hi - lo) + lo)
        if upto != 10:
            hidden = 64
        self.neck = nn.Sequential(
            nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3 if upto == 10 else 1, padding=1 if upto == 10 else 0,
                      bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden, 1)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics stay the ImageNet ones
        return self

    def head_map(self, x):
        """The map the classifier reads (N, hidden, h, w)."""
        x = x * self.in_scale + self.in_shift  # ImageNet-normalised -> the backbone's range
        if self.training:
            b = self.backbone
            k = len(b.blocks) - self.tune_blocks
            with torch.no_grad():
                f = b.blocks[:k](F.relu6(b.conv1_bn(b.conv1(F.pad(x, pretrained.STRIDE2_PAD)))))
            f = b.blocks[k:](f)
        else:
            f = self.backbone(x)
        return self.neck(f)

    def forward(self, x):
        return self.head(self.head_map(x), self.classifier)

"""The ImageNet-initialised third detector: a frozen MobileNetV2 (blocks 0-10) and a small head.

The backbone is `pretrained.MobileNetV2Blocks(10)` with the ImageNet weights shipped inside
``nsfwjs@4.4.0`` (`pretrained.fetch`, `pretrained.load_imagenet`); it stays frozen and in eval mode
(its batch-norm statistics never move). Only the head trains: 1x1 conv 96->128, BN, ReLU, 3x3 conv
128->128, BN, ReLU, and the same GAP classifier as the other detectors (``forward`` returns
``(logit, cam)``, ``logit == mean(cam)``). The input is the detectors' common input (ImageNet
mean/std normalised RGB); the network undoes that normalisation into the backbone's 0..1 range
itself, so the service cuts one set of views for all members.
"""

from __future__ import annotations

import torch
from torch import nn

from model_export import pretrained
from model_export.nets import GapHead


class MobileNetDetector(GapHead, nn.Module):
    def __init__(self, hidden: int = 128, load_weights: bool = True):
        super().__init__()
        self.backbone = pretrained.MobileNetV2Blocks(10)
        if load_weights:
            if not (pretrained.CACHE_DIR / pretrained.NPZ_NAME).exists():
                pretrained.fetch()
            pretrained.load_imagenet(self.backbone)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        c = self.backbone.out_channels
        lo, hi = pretrained.INPUT_RANGE
        # pixels p in 0..1 were normalised as (p - MEAN) / STD; the backbone wants lo + p (hi - lo)
        from model_export.common import SPEC

        mean = torch.tensor(SPEC["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(SPEC["std"]).view(1, 3, 1, 1)
        self.register_buffer("in_scale", std * (hi - lo))
        self.register_buffer("in_shift", mean * (hi - lo) + lo)
        self.neck = nn.Sequential(
            nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden, 1)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics stay the ImageNet ones
        return self

    def forward(self, x):
        x = x * self.in_scale + self.in_shift  # ImageNet-normalised -> the backbone's range
        if self.training:
            with torch.no_grad():
                f = self.backbone(x)
        else:
            f = self.backbone(x)
        return self.head(self.neck(f), self.classifier)

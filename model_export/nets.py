"""The two detector architectures in plain PyTorch, true to their published definitions.

Both end in a global-average-pooling (GAP) head: a single linear classifier ``w`` (+ bias ``b``)
applied at every spatial position of the last feature map gives a class activation map
``cam[h, w] = w . f[:, h, w] + b`` (in logit units), and the fake logit is its mean, which is
exactly ``w . GAP(f) + b``. No fully connected 4096-wide layers (they are most of VGG16's 528 MB).

Module names follow torchvision (``features.N`` / ``classifier`` for VGG, ``conv1, bn1, layer1..4,
fc`` for ResNet), so at ``width=1.0`` a torchvision ``vgg16_bn`` ``features.*`` state dict or a
``resnet18``/``resnet34`` state dict minus ``fc`` would load with ``strict=False``. The shipped
models use a ``width`` multiplier on every channel count (the CPU budget of this project cannot
train the full widths); the layer structure (13 conv layers for VGG16; 2-2-2-2 BasicBlocks for
ResNet-18) is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _w(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


class GapHead(nn.Module):
    """Mixin behaviour: ``forward`` returns (logit (N,), cam (N, h, w))."""

    def head(self, f: torch.Tensor, lin: nn.Linear):
        w = lin.weight.view(1, -1, 1, 1)
        cam = F.conv2d(f, w, lin.bias)[:, 0]  # a 1x1 convolution: the classifier at every pixel
        logit = cam.mean(dim=(1, 2))
        return logit, cam


class VGG(GapHead, nn.Module):
    """VGG (configuration D = VGG16: 13 conv layers) with batch norm and a GAP head.

    ``features`` is laid out exactly like torchvision's ``vgg16_bn().features`` (conv, bn, relu per
    layer; max-pool at the same indices). With ``last_pool=False`` the fifth max-pool (index 43) is
    an ``nn.Identity`` (no parameters, so indices and state-dict keys are unchanged): the map
    stays at 1/16 of the input, finer for the activation map. ``classifier`` is one Linear(C, 1).
    """

    def __init__(self, width: float = 1.0, cfg=VGG16_CFG, last_pool: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        n_pools = sum(1 for v in cfg if v == "M")
        seen = 0
        for v in cfg:
            if v == "M":
                seen += 1
                last = seen == n_pools
                layers.append(nn.Identity() if (last and not last_pool) else nn.MaxPool2d(2, 2))
            else:
                c = _w(v, width)
                layers += [
                    nn.Conv2d(c_in, c, 3, padding=1),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                ]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, 1)
        self.out_channels = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x):
        return self.head(self.features(x), self.classifier)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


RESNET_LAYOUTS = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
}


class ResNet(GapHead, nn.Module):
    """ResNet-18/34/50 (He et al. 2016, torchvision layout), GAP head ``fc`` = Linear(C, 1)."""

    def __init__(self, depth: int = 18, width: float = 1.0):
        super().__init__()
        block, layers = RESNET_LAYOUTS[depth]
        self.inplanes = _w(64, width)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, _w(64, width), layers[0], 1)
        self.layer2 = self._make(block, _w(128, width), layers[1], 2)
        self.layer3 = self._make(block, _w(256, width), layers[2], 2)
        self.layer4 = self._make(block, _w(512, width), layers[3], 2)
        self.fc = nn.Linear(self.inplanes, 1)
        self.out_channels = self.inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # zero-init the last BN of each residual branch
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def _make(self, block, planes, blocks, stride):
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.head(self.features(x), self.fc)


def build(arch: str, width: float, depth: int = 18) -> nn.Module:
    """``arch`` is ``vgg16`` or ``resnet`` (depth 18/34/50)."""
    if arch == "vgg16":
        return VGG(width=width)
    if arch == "resnet":
        return ResNet(depth=depth, width=width)
    raise ValueError(f"unknown arch {arch!r}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

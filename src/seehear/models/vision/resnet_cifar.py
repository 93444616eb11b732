"""CIFAR-style ResNets and an airbench-style fast net, for small images (16x16 to 64x64) trained from scratch.

- resnet8 / resnet20: He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2 (the CIFAR
  network: a 3x3 stem, three stages of n basic blocks at widths 16/32/64, depth 6n+2). Shortcuts that change
  shape use a 1x1 conv + BN (option B) so any width multiplier works.
- fastnet: after Keller Jordan's airbench (2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"): a 2x2
  "whitening" stem conv, then three wide conv groups (conv, maxpool, BN, GELU, conv, BN, GELU) and a global max
  pool. Shallow and wide is what trains fastest per FLOP. airbench's data-derived frozen whitening init and
  logit scaling are left out so the net trains with the generic seehear recipe; widths are scaled down for CPU.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, blocks_per_stage: int = 1, width: int = 16,
                 dropout: float = 0.0):
        super().__init__()
        widths = [width, 2 * width, 4 * width]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        layers, cin = [], width
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x))).flatten(1)
        return self.classifier(self.dropout(x))


class ConvGroup(nn.Module):
    """airbench's block: conv -> maxpool -> BN -> GELU -> conv -> BN -> GELU (pooling early saves 3/4 of the
    second conv's FLOPs)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2, ceil_mode=True),
            nn.BatchNorm2d(cout), nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FastNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, widths=(32, 64, 128), dropout: float = 0.0):
        super().__init__()
        whiten = max(24, 8 * in_channels)  # airbench: 2 * (3 channels * 2 * 2 patch) = 24 filters
        self.stem = nn.Sequential(nn.Conv2d(in_channels, whiten, 2, bias=True), nn.GELU())
        groups, cin = [], whiten
        for w in widths:
            groups.append(ConvGroup(cin, int(w)))
            cin = int(w)
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.groups(self.stem(x))).flatten(1)
        return self.classifier(self.dropout(x))


@register_model("resnet8", "image", "CIFAR ResNet-8 (He et al. 2016), widths 16/32/64, ~78k params")
def resnet8(num_classes: int, in_channels: int, input_size, width: int = 16, dropout: float = 0.0):
    return CifarResNet(num_classes, in_channels, blocks_per_stage=1, width=width, dropout=dropout)


@register_model("resnet20", "image", "CIFAR ResNet-20 (He et al. 2016), widths 16/32/64, ~0.27M params")
def resnet20(num_classes: int, in_channels: int, input_size, width: int = 16, dropout: float = 0.0):
    return CifarResNet(num_classes, in_channels, blocks_per_stage=3, width=width, dropout=dropout)


@register_model("fastnet", "image", "airbench-style shallow-wide net (whiten stem, 3 conv groups 32/64/128), ~0.3M params")
def fastnet(num_classes: int, in_channels: int, input_size, widths=(32, 64, 128), dropout: float = 0.0):
    return FastNet(num_classes, in_channels, widths=tuple(widths), dropout=dropout)


@register_model("fastnet_wide", "image", "fastnet at airbench94's widths 64/256/256 (~2M params; GPU or patience)")
def fastnet_wide(num_classes: int, in_channels: int, input_size, widths=(64, 256, 256), dropout: float = 0.0):
    return FastNet(num_classes, in_channels, widths=tuple(widths), dropout=dropout)

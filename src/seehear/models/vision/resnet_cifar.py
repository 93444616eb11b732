"""CIFAR-style ResNets, for small images (16x16 to 64x64) trained from scratch.

- resnet8 / resnet20: He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2 (the CIFAR
  network: a 3x3 stem, three stages of n basic blocks at widths 16/32/64, depth 6n+2). Shortcuts that change
  shape use a 1x1 conv + BN (option B) so any width multiplier works.
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


@register_model("resnet8", "image", "CIFAR ResNet-8 (He et al. 2016), widths 16/32/64, ~78k params")
def resnet8(num_classes: int, in_channels: int, input_size, width: int = 16, dropout: float = 0.0):
    return CifarResNet(num_classes, in_channels, blocks_per_stage=1, width=width, dropout=dropout)


@register_model("resnet20", "image", "CIFAR ResNet-20 (He et al. 2016), widths 16/32/64, ~0.27M params")
def resnet20(num_classes: int, in_channels: int, input_size, width: int = 16, dropout: float = 0.0):
    return CifarResNet(num_classes, in_channels, blocks_per_stage=3, width=width, dropout=dropout)

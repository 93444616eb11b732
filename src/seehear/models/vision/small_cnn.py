"""A small, fast CNN for small images (8x8 to 32x32 digits, icons, shapes): the default when a ResNet is overkill.

Four conv-BN-ReLU blocks (widths w, 2w, 4w, 4w) with max-pooling after blocks 2 and 3, global average pooling and a
linear head. Pools use ceil_mode so that even 4x4 inputs keep a non-empty feature map.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32, dropout: float = 0.1):
        super().__init__()
        w = int(width)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, w),
            conv_bn_relu(w, 2 * w), nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(2 * w, 4 * w), nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(4 * w, 4 * w),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


@register_model("small_cnn", "image", "4-block conv-BN-ReLU CNN (width 32), ~0.24M params, for 8x8-32x32 digits/icons")
def small_cnn(num_classes: int, in_channels: int, input_size, width: int = 32, dropout: float = 0.1):
    return SmallCNN(num_classes, in_channels, width=width, dropout=dropout)

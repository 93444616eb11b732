"""TC-ResNet: Choi, Park, Kang, Kim et al. 2019, "Temporal Convolution for Real-time Keyword Spotting on Mobile
Devices" (Interspeech 2019, arXiv:1904.03814).

The F bands of the feature image are treated as input channels of a 1D convolution over time, so every layer sees
the whole spectrum at once and compute is small: a 3-tap stem, residual blocks of two 9-tap convs (stride 2 in
the first, a 1x1-conv shortcut when the shape changes), global average over time and a linear head.
TC-ResNet8: widths 16/24/32/48; TC-ResNet14: 16/24/24/32/32/48/48; both times a width multiplier.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


class TCBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cin, cout, 9, stride, 4, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True),
            nn.Conv1d(cout, cout, 9, 1, 4, bias=False), nn.BatchNorm1d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout),
                                          nn.ReLU(inplace=True))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class TCResNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size, widths, strides, width: float = 1.0,
                 dropout: float = 0.1):
        super().__init__()
        c = [max(1, int(round(w * width))) for w in widths]
        self.stem = nn.Conv1d(in_channels * int(input_size[0]), c[0], 3, padding=1, bias=False)
        self.blocks = nn.Sequential(*[TCBlock(c[i], c[i + 1], strides[i]) for i in range(len(c) - 1)])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, ch, f, t = x.shape
        x = self.blocks(self.stem(x.reshape(b, ch * f, t)))  # bands (and channels) become conv channels
        return self.classifier(self.dropout(x.mean(dim=-1)))


@register_model("tcresnet8", "audio", "TC-ResNet8 (Choi et al. 2019), ~66k params: temporal 1D convs, very fast")
def tcresnet8(num_classes: int, in_channels: int, input_size, width: float = 1.0, dropout: float = 0.1):
    return TCResNet(num_classes, in_channels, input_size, [16, 24, 32, 48], [2, 2, 2], width, dropout)


@register_model("tcresnet14", "audio", "TC-ResNet14 (Choi et al. 2019), ~0.14M params")
def tcresnet14(num_classes: int, in_channels: int, input_size, width: float = 1.0, dropout: float = 0.1):
    return TCResNet(num_classes, in_channels, input_size, [16, 24, 24, 32, 32, 48, 48], [2, 1, 2, 1, 2, 1], width,
                    dropout)

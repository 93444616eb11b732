"""BC-ResNet: Kim, Chang, Lee, Sung 2021, "Broadcasted Residual Learning for Efficient Keyword Spotting"
(Interspeech 2021, arXiv:2106.04140).

Each block splits a 2D conv into a frequency-depthwise conv on the full [F, T] map (f2, with SubSpectral
Normalisation) and a cheap 1D temporal path on the frequency-averaged map (f1: temporal depthwise conv, BN, swish,
1x1 conv, channel dropout) whose output is *broadcast* back over frequency:  y = ReLU(x + f2(x) + BC(f1(avg(f2(x))))).
That gives 2D features at nearly 1D cost; BC-ResNet-1 has ~9k parameters and reaches ~96.5% on Speech Commands.

Layout as in the paper (Table 1) and the authors' code: a 5x5 conv-BN-ReLU stem (stride 2 in frequency), four
stages of 2/2/4/4 blocks with widths 8/12/16/20 x tau, frequency stride 2 at stages 2 and 3, temporal dilation
1/2/4/8, then a depthwise 5x5 conv, a 1x1 conv-BN-ReLU to 32 x tau, average pooling and a 1x1 classifier. For
inputs other than 40 bands the number of SSN sub-bands is the largest divisor (<= 5) of the band count at that
depth, so any F works.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


def _sub_bands(freq: int, wanted: int = 5) -> int:
    return max(s for s in range(1, wanted + 1) if freq % s == 0)


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class SubSpectralNorm(nn.Module):
    """Batch norm with separate statistics per frequency sub-band (Chang et al. 2021, "SubSpectral
    Normalization for Neural Audio Data Processing")."""

    def __init__(self, channels: int, sub_bands: int):
        super().__init__()
        self.s = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        return self.bn(x.reshape(b, c * self.s, f // self.s, t)).reshape(b, c, f, t)


class BCBlock(nn.Module):
    """Normal block (cin == cout, identity residual) or transition block (1x1 conv to cout first, no identity)."""

    def __init__(self, cin: int, cout: int, freq_in: int, stride: int = 1, dilation: int = 1, dropout: float = 0.1):
        super().__init__()
        self.transition = cin != cout
        self.pre = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
                    if self.transition else nn.Identity())
        self.freq_conv = nn.Conv2d(cout, cout, (3, 1), stride=(stride, 1), padding=(1, 0), groups=cout, bias=False)
        self.freq_out = _conv_out(freq_in, 3, stride, 1)
        self.ssn = SubSpectralNorm(cout, _sub_bands(self.freq_out))
        self.temporal = nn.Sequential(
            nn.Conv2d(cout, cout, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=cout, bias=False),
            nn.BatchNorm2d(cout), nn.SiLU(),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.Dropout2d(dropout),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pre(x)
        f2 = self.ssn(self.freq_conv(out))
        f1 = self.temporal(f2.mean(dim=2, keepdim=True))  # [B, C, 1, T], broadcast over frequency below
        y = f2 + f1
        if not self.transition:
            y = y + x
        return self.relu(y)


class BCResNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 1, input_size=(40, 101), tau: float = 1,
                 dropout: float = 0.1):
        super().__init__()
        c = lambda n: max(1, int(round(n * tau)))  # noqa: E731
        freq = int(input_size[0])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c(16), 5, stride=(2, 1), padding=2, bias=False),
                                  nn.BatchNorm2d(c(16)), nn.ReLU(inplace=True))
        freq = _conv_out(freq, 5, 2, 2)
        # (width, blocks, freq stride of the first block, temporal dilation) per stage, from the paper
        stages = [(8, 2, 1, 1), (12, 2, 2, 2), (16, 4, 2, 4), (20, 4, 1, 8)]
        blocks, cin = [], c(16)
        for width, n, stride, dil in stages:
            for i in range(n):
                blk = BCBlock(cin, c(width), freq, stride=stride if i == 0 else 1, dilation=dil, dropout=dropout)
                blocks.append(blk)
                cin, freq = c(width), blk.freq_out
        self.blocks = nn.Sequential(*blocks)
        kf = min(5, freq)  # the paper's 5x5 depthwise head conv collapses the 5 remaining bands
        self.head = nn.Sequential(
            nn.Conv2d(cin, cin, (kf, 5), padding=(0, 2), groups=cin, bias=False),
            nn.Conv2d(cin, c(32), 1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(c(32), num_classes, 1)  # a 1x1 conv == linear on the pooled vector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        x = x.mean(dim=(2, 3), keepdim=True)
        return self.classifier(x).flatten(1)


@register_model("bcresnet1", "audio", "BC-ResNet-1 (Kim et al. 2021), ~9k params: tiny, fast KWS baseline")
def bcresnet1(num_classes: int, in_channels: int, input_size, dropout: float = 0.1, tau: float = 1):
    return BCResNet(num_classes, in_channels, input_size, tau=tau, dropout=dropout)


@register_model("bcresnet3", "audio", "BC-ResNet-3 (Kim et al. 2021), ~55k params: good KWS default on CPU")
def bcresnet3(num_classes: int, in_channels: int, input_size, dropout: float = 0.1, tau: float = 3):
    return BCResNet(num_classes, in_channels, input_size, tau=tau, dropout=dropout)


@register_model("bcresnet8", "audio", "BC-ResNet-8 (Kim et al. 2021), ~0.32M params: the paper's best")
def bcresnet8(num_classes: int, in_channels: int, input_size, dropout: float = 0.1, tau: float = 8):
    return BCResNet(num_classes, in_channels, input_size, tau=tau, dropout=dropout)

"""Conformer encoder: Gulati et al. 2020, "Conformer: Convolution-augmented Transformer for Speech Recognition"
(Interspeech 2020, arXiv:2005.08100).

A conv subsampling front end (two 3x3 convs with stride 2: time / 4, frequency / 4), a linear projection to
`dim`, then conformer blocks (half-step FFN, self-attention, depthwise-conv module, half-step FFN), taken from
torchaudio.models.Conformer. encode(x) -> [B, ceil(ceil(T/2)/2), dim]; the classifier sees the mean over time.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchaudio.models import Conformer as _TAConformer

from seehear.models.registry import register_model


def _half(n: int) -> int:
    return (n - 1) // 2 + 1  # conv k=3, s=2, p=1


class ConformerClassifier(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size, dim: int = 64, layers: int = 2, heads: int = 4,
                 ffn_dim: int = 128, kernel_size: int = 15, subsample_channels: int = 32, dropout: float = 0.1):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        c = int(subsample_channels)
        self.subsample = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        f_out = _half(_half(int(input_size[0])))
        self.proj = nn.Sequential(nn.Linear(c * f_out, dim), nn.Dropout(dropout))
        self.encoder = _TAConformer(input_dim=dim, num_heads=heads, ffn_dim=ffn_dim, num_layers=layers,
                                    depthwise_conv_kernel_size=kernel_size, dropout=dropout)
        self.embed_dim = dim
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = self.subsample(x)  # [B, c, F/4, T/4]
        b, c, f, t = x.shape
        h = self.proj(x.reshape(b, c * f, t).transpose(1, 2))  # [B, T/4, dim]
        lengths = torch.full((b,), t, dtype=torch.long, device=h.device)  # fixed-length clips: no padding
        return self.encoder(h, lengths)[0]

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.encode(x))))


@register_model("conformer_tiny", "audio", "Conformer, 2 blocks x dim 64, 4 heads, conv kernel 15, ~0.15M params",
                sequence=True)
def conformer_tiny(num_classes: int, in_channels: int, input_size, dim: int = 64, layers: int = 2, heads: int = 4,
                   ffn_dim: int = 128, kernel_size: int = 15, subsample_channels: int = 32, dropout: float = 0.1):
    return ConformerClassifier(num_classes, in_channels, input_size, dim, layers, heads, ffn_dim, kernel_size,
                               subsample_channels, dropout)


@register_model("conformer_small", "audio", "Conformer, 4 blocks x dim 144, 4 heads, conv kernel 31, ~2M params",
                sequence=True)
def conformer_small(num_classes: int, in_channels: int, input_size, dim: int = 144, layers: int = 4, heads: int = 4,
                    ffn_dim: int = 576, kernel_size: int = 31, subsample_channels: int = 64, dropout: float = 0.1):
    return ConformerClassifier(num_classes, in_channels, input_size, dim, layers, heads, ffn_dim, kernel_size,
                               subsample_channels, dropout)

"""Pieces every CTC acoustic model shares: time subsampling and length bookkeeping."""
from __future__ import annotations

import torch
import torch.nn as nn


def pad_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """[B, T] True where a frame is padding (the form nn.MultiheadAttention's key_padding_mask wants)."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


class ConvSubsample(nn.Module):
    """Two 3x3 convs with stride 2 over (bands, frames): time / 4, as in the Conformer and ESPnet recipes.
    [B, 1, F, T] -> [B, T', dim]; T' = ceil(ceil(T / 2) / 2)."""

    def __init__(self, bands: int, dim: int, channels: int = 64, dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        f = (((bands - 1) // 2 + 1) - 1) // 2 + 1
        self.proj = nn.Sequential(nn.Linear(channels * f, dim), nn.Dropout(dropout))

    @staticmethod
    def out_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return ((lengths - 1) // 2 + 1 - 1) // 2 + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x = self.conv(x)
        b, c, f, t = x.shape
        return self.proj(x.reshape(b, c * f, t).transpose(1, 2)), self.out_lengths(lengths).clamp(max=t)


class StackSubsample(nn.Module):
    """Stack `factor` consecutive frames into one vector (no context across the cut, so it streams exactly in
    chunks of `factor` frames). [B, 1, F, T] -> [B, ceil(T / factor), dim]."""

    def __init__(self, bands: int, dim: int, factor: int = 4, dropout: float = 0.1):
        super().__init__()
        self.factor = factor
        self.norm = nn.LayerNorm(bands * factor)
        self.proj = nn.Sequential(nn.Linear(bands * factor, dim), nn.Dropout(dropout))

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + self.factor - 1) // self.factor

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        b, _, f, t = x.shape
        pad = (-t) % self.factor
        x = nn.functional.pad(x[:, 0], (0, pad))  # [B, F, T + pad]
        x = x.transpose(1, 2).reshape(b, (t + pad) // self.factor, self.factor * f)
        return self.proj(self.norm(x)), self.out_lengths(lengths)

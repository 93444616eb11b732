"""Keyword Transformer: Berg, O'Connor, Cruz 2021, "Keyword Transformer: A Self-Attention Model for Keyword
Spotting" (Interspeech 2021, arXiv:2104.00769).

A ViT over time: each patch is the full spectrum of `patch_time` frames (the paper uses 1), linearly projected to
`dim`, plus a learned position embedding, through a transformer encoder. Pooling: 'mean' over frame tokens
(default: works better than a CLS token on small data) or 'cls' (the paper's CLS token).

Deviation from the paper: pre-norm layers by default (`prenorm=True`), which train stably with seehear's generic
learning rates without KWT's long warm-up; pass prenorm=False for the paper's post-norm.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.models.registry import register_model


class KWT(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size, dim: int = 64, depth: int = 4, heads: int = 2,
                 mlp_dim: int = 128, patch_time: int = 1, pool: str = "mean", dropout: float = 0.1,
                 prenorm: bool = True):
        super().__init__()
        if pool not in ("mean", "cls"):
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        freq, frames = int(input_size[0]), int(input_size[1])
        self.patch_time, self.pool_mode, self.embed_dim = int(patch_time), pool, dim
        # one conv of full-spectrum height == a linear projection of each (F x patch_time) patch
        self.patch = nn.Conv2d(in_channels, dim, (freq, self.patch_time), stride=(freq, self.patch_time))
        n = -(-frames // self.patch_time) + (1 if pool == "cls" else 0)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=prenorm)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim) if prenorm else None,
                                             enable_nested_tensor=False)
        self.classifier = nn.Linear(dim, num_classes)

    def _pos(self, n: int) -> torch.Tensor:
        if n == self.pos.shape[1]:
            return self.pos
        # clips of another length: stretch the learned table linearly over time
        return F.interpolate(self.pos.transpose(1, 2), size=n, mode="linear", align_corners=False).transpose(1, 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, F, T] -> [B, T', dim]; with pool='cls' the CLS token is token 0 (T' = patches + 1)."""
        t = x.shape[-1]
        if t % self.patch_time:
            x = F.pad(x, (0, self.patch_time - t % self.patch_time))
        h = self.patch(x).flatten(2).transpose(1, 2)  # [B, T/p, dim]
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.drop(h + self._pos(h.shape[1]))
        return self.encoder(h)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, 0] if self.pool_mode == "cls" else h.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.encode(x)))


@register_model("kwt_tiny", "audio", "Keyword Transformer, 4 layers x dim 64, 2 heads, ~0.15M params",
                sequence=True)
def kwt_tiny(num_classes: int, in_channels: int, input_size, dim: int = 64, depth: int = 4, heads: int = 2,
             mlp_dim: int = 128, patch_time: int = 1, pool: str = "mean", dropout: float = 0.1, prenorm: bool = True):
    return KWT(num_classes, in_channels, input_size, dim, depth, heads, mlp_dim, patch_time, pool, dropout, prenorm)


@register_model("kwt1", "audio", "KWT-1 (Berg et al. 2021): 12 layers x dim 64, 1 head, MLP 256, ~0.6M params",
                sequence=True)
def kwt1(num_classes: int, in_channels: int, input_size, dim: int = 64, depth: int = 12, heads: int = 1,
         mlp_dim: int = 256, patch_time: int = 1, pool: str = "cls", dropout: float = 0.0, prenorm: bool = True):
    return KWT(num_classes, in_channels, input_size, dim, depth, heads, mlp_dim, patch_time, pool, dropout, prenorm)

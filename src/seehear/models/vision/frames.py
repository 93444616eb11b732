"""Image-sequence classifiers (modality frames): a small CNN applied to every frame with shared weights, then a
model over time. Input [B, T, C, H, W] float (each frame normalised by the Recognizer's front end).

- cnn_lstm_frames: an LSTM over the frame embeddings; its last hidden state goes to the classifier (the seeds'
  CNN+RNN, as in Donahue et al. 2015, "Long-term Recurrent Convolutional Networks").
- frames_transformer: a small temporal transformer with learned position embeddings, CLS- or mean-pooled.
- frames_mean: the frame embeddings averaged over time, then a linear classifier. It cannot see order (the baseline
  that shows whether a task needs motion: left vs right is the same set of frames played backwards).

The per-frame CNN keeps a coarse spatial grid (adaptive pooling to grid x grid, flattened) instead of global average
pooling: where things are in each frame is what motion is made of, and a global average throws position away.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.models.registry import register_model
from seehear.models.vision.small_cnn import conv_bn_relu


class FrameEncoder(nn.Module):
    """[N, C, H, W] -> [N, dim]: three conv-BN-ReLU blocks (widths w, 2w, 2w), two 2x max-pools, an average pool
    to grid x grid and a linear projection of that map."""

    def __init__(self, in_channels: int, width: int = 16, dim: int = 64, grid: int = 4, size=(32, 32)):
        super().__init__()
        w = int(width)
        self.grid = int(grid)
        self.features = nn.Sequential(conv_bn_relu(in_channels, w), nn.MaxPool2d(2, ceil_mode=True),
                                      conv_bn_relu(w, 2 * w), nn.MaxPool2d(2, ceil_mode=True),
                                      conv_bn_relu(2 * w, 2 * w))
        # the map size of the built input: pooled with a fixed kernel (what ONNX exports with a dynamic batch,
        # which adaptive pooling is not), adaptively for other sizes
        self.map = tuple(-(-int(s) // 4) for s in size)
        self.fixed = all(m % self.grid == 0 for m in self.map)
        self.project = nn.Sequential(nn.Linear(2 * w * self.grid * self.grid, dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.fixed and tuple(f.shape[-2:]) == self.map:
            k = (self.map[0] // self.grid, self.map[1] // self.grid)
            f = F.avg_pool2d(f, k) if k != (1, 1) else f
        else:
            f = F.adaptive_avg_pool2d(f, self.grid)
        return self.project(f.flatten(1))


class FramesClassifier(nn.Module):
    """The shared frame encoder, then `temporal` (lstm | transformer | mean) over the T frame embeddings."""

    def __init__(self, num_classes: int, in_channels: int, input_size, temporal: str = "lstm", width: int = 16,
                 dim: int = 64, grid: int = 4, hidden: int = 64, depth: int = 2, heads: int = 4,
                 pool: str = "cls", dropout: float = 0.1):
        super().__init__()
        if temporal not in ("lstm", "transformer", "mean"):
            raise ValueError(f"temporal must be lstm, transformer or mean, got {temporal!r}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        frames = int(input_size[0]) if len(input_size) == 3 else 16
        size = tuple(input_size[-2:])
        self.temporal, self.pool_mode, self.embed_dim = temporal, pool, dim
        self.encoder = FrameEncoder(in_channels, width, dim, grid, size)
        self.drop = nn.Dropout(dropout)
        out = dim
        if temporal == "lstm":
            self.rnn = nn.LSTM(dim, hidden, batch_first=True)
            out = hidden
        elif temporal == "transformer":
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(1, frames + 1, dim) * 0.02)  # +1: the CLS token's place
            layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim),
                                                     enable_nested_tensor=False)
        self.classifier = nn.Linear(out, num_classes)

    def _pos(self, n: int) -> torch.Tensor:
        if n == self.pos.shape[1]:
            return self.pos
        # another number of frames than built for: stretch the learned table over time (as KWT does)
        return F.interpolate(self.pos.transpose(1, 2), size=n, mode="linear", align_corners=False).transpose(1, 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] -> frame embeddings [B, T, dim] (one CNN for all frames: the batch and time axes are
        folded together)."""
        t = x.shape[1]
        return self.encoder(x.flatten(0, 1)).reshape(-1, t, self.embed_dim)  # -1: the batch axis stays dynamic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"frames models take [B, T, C, H, W], got {tuple(x.shape)}")
        h = self.encode(x)
        if self.temporal == "lstm":
            _, (last, _) = self.rnn(self.drop(h))
            z = last[-1]
        elif self.temporal == "transformer":
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
            h = self.transformer(self.drop(h + self._pos(h.shape[1])))
            z = h[:, 0] if self.pool_mode == "cls" else h[:, 1:].mean(dim=1)
        else:
            z = h.mean(dim=1)
        return self.classifier(self.drop(z))


@register_model("cnn_lstm_frames", "frames", "per-frame CNN (shared) + LSTM over time, last hidden -> classes; "
                "~0.1M params", defaults={"width": 16, "dim": 64, "hidden": 64})
def cnn_lstm_frames(num_classes: int, in_channels: int, input_size, width: int = 16, dim: int = 64, grid: int = 4,
                    hidden: int = 64, dropout: float = 0.1):
    return FramesClassifier(num_classes, in_channels, input_size, "lstm", width=width, dim=dim, grid=grid,
                            hidden=hidden, dropout=dropout)


@register_model("frames_transformer", "frames", "per-frame CNN (shared) + 2-layer temporal transformer with "
                "learned positions, CLS-pooled", defaults={"width": 16, "dim": 64, "depth": 2, "heads": 4})
def frames_transformer(num_classes: int, in_channels: int, input_size, width: int = 16, dim: int = 64,
                       grid: int = 4, depth: int = 2, heads: int = 4, pool: str = "cls", dropout: float = 0.1):
    return FramesClassifier(num_classes, in_channels, input_size, "transformer", width=width, dim=dim, grid=grid,
                            depth=depth, heads=heads, pool=pool, dropout=dropout)


@register_model("frames_mean", "frames", "per-frame CNN (shared) averaged over time: the baseline that cannot "
                "see order", defaults={"width": 16, "dim": 64})
def frames_mean(num_classes: int, in_channels: int, input_size, width: int = 16, dim: int = 64, grid: int = 4,
                dropout: float = 0.1):
    return FramesClassifier(num_classes, in_channels, input_size, "mean", width=width, dim=dim, grid=grid,
                            dropout=dropout)

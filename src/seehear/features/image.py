"""Image front end: raw pixels (uint8 or float in [0, 1]) -> per-channel normalised float.

The statistics are buffers, so they travel with the model's weights and `predict` needs no training data.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.errors import ConfigError


class ImageNormalize(nn.Module):
    """(x / 255 if uint8) then (x - mean) / std per channel. [B, C, H, W] -> float [B, C, H, W]."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ConfigError(f"image normalisation needs one mean and one std per channel, got {mean} and {std}")
        if (std_t <= 0).any():
            raise ConfigError(f"image normalisation std must be positive, got {std}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() * (1.0 / 255.0)
        elif not x.is_floating_point():
            x = x.float()
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={[round(v, 4) for v in self.mean.flatten().tolist()]}, " \
               f"std={[round(v, 4) for v in self.std.flatten().tolist()]}"


@torch.no_grad()
def channel_stats(x: torch.Tensor, max_images: int = 10000, chunk: int = 512,
                  generator: torch.Generator | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images [N, C, H, W] on the [0, 1] scale.

    Uses an evenly spread (or random, with a generator) subsample of at most max_images, accumulated in float64
    chunks so that a large uint8 cache is never copied to float all at once."""
    if x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"channel_stats expects a non-empty [N, C, H, W] tensor, got {tuple(x.shape)}")
    n = x.shape[0]
    if n > max_images:
        idx = (torch.randperm(n, generator=generator)[:max_images].sort().values if generator is not None
               else torch.linspace(0, n - 1, max_images).long())
    else:
        idx = torch.arange(n)
    scale = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
    c = x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    count = 0
    for i in range(0, len(idx), chunk):
        b = x[idx[i:i + chunk].to(x.device)].to(torch.float64) * scale
        s1 += b.sum(dim=(0, 2, 3)).cpu()
        s2 += (b * b).sum(dim=(0, 2, 3)).cpu()
        count += b.shape[0] * b.shape[2] * b.shape[3]
    mean = s1 / count
    std = (s2 / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant channel must not divide by 0
    return mean.tolist(), std.tolist()

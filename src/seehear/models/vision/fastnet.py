"""fastnet: a shallow, wide CNN for small images (16x16 to 64x64) trained from scratch; the image-small default.

After Keller Jordan's airbench (2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv:2404.00498), whose
published ingredients are written anew here:
- a 2x2 patch-whitening first layer. Its filters are the eigenvectors of the training images' 2x2-patch covariance
  divided by sqrt(eigenvalue), and their negatives, so that after the GELU both signs survive. They are set from
  data before training (`init_from_data`, called by the trainer) and then frozen: the net starts from decorrelated
  inputs instead of spending steps learning to decorrelate them;
- three conv groups (conv, maxpool, BN, GELU, conv, BN, GELU): pooling right after the first conv saves 3/4 of the
  second conv's FLOPs, and shallow-wide trains fastest per FLOP. Pooling rounds odd sizes down (31 -> 15 -> 7 -> 3
  after the 2x2 stem on 32x32): 15-19% fewer FLOPs than rounding up (by width), and the same accuracy (CIFAR-10:
  87.9% either way at 8 minutes, bench/results/probes); inputs under 9 pixels round up so that a pixel is left;
- identity (Dirac) initialisation of every 3x3 conv: the untrained group passes its input channels through, so
  early gradients reach the whitened pixels undistorted;
- BatchNorm with fast-moving running statistics (the weights change a lot in a short run), global max pooling and
  a bias-free linear head.
Widths are cut down from airbench94's 64/256/256 to what two CPU cores train in minutes.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model

WHITEN_PATCH = 2  # pixels per side of the whitening filters
WHITEN_EPS = 5e-4  # added to the eigenvalues: the smallest ones are mostly JPEG/quantisation noise
WHITEN_IMAGES = 5000  # images whose patches estimate the covariance (more changes nothing measurable)
WHITEN_BIAS_UNTIL = 0.3  # fraction of training after which the whitening bias freezes too (airbench: 3 of 9.9 epochs)
BN_MOMENTUM = 0.4  # PyTorch convention (new = 0.6 old + 0.4 batch): running stats follow the fast-moving weights


def batchnorm(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


class ConvGroup(nn.Module):
    """conv -> maxpool -> BN -> GELU -> conv -> BN -> GELU."""

    def __init__(self, cin: int, cout: int, bn_weight: bool = True, ceil_pool: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2, ceil_mode=ceil_pool), batchnorm(cout),
            nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), batchnorm(cout), nn.GELU(),
        )
        for m in self.net:
            if isinstance(m, nn.BatchNorm2d):
                m.weight.requires_grad_(bn_weight)  # airbench freezes the scale at 1 and trains only the shift
        for m in self.net:
            if isinstance(m, nn.Conv2d):  # identity on the first min(cin, cout) channels, default init elsewhere
                w = m.weight.data
                nn.init.dirac_(w[:min(w.shape[0], w.shape[1])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FastNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, widths=(32, 64, 128), dropout: float = 0.0,
                 logit_scale: float = 1.0, bn_weight: bool = True, ceil_pool: bool = False):
        super().__init__()
        self.logit_scale = float(logit_scale)  # airbench94 uses 1/9 with its large learning rate
        k = WHITEN_PATCH
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 2 * in_channels * k * k, k, bias=True), nn.GELU())
        groups, cin = [], 2 * in_channels * k * k
        for w in widths:
            groups.append(ConvGroup(cin, int(w), bn_weight, ceil_pool))
            cin = int(w)
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.groups(self.stem(x))).flatten(1)
        return self.classifier(self.dropout(x)) * self.logit_scale

    def on_progress(self, done: float) -> None:
        """Called by the trainer at each epoch start with the fraction of training done: the whitening bias trains
        early on and is then frozen, so that the later, averaged training sees fixed input features."""
        self.stem[0].bias.requires_grad_(done < WHITEN_BIAS_UNTIL)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, keep: bool = False) -> None:
        """Set the first layer to whiten 2x2 patches of `x` (normalised training images [N, C, H, W]) and freeze
        it (its bias still trains). Called by the trainer before training, also when resuming (the checkpoint
        then restores the same values), so the set of trained parameters is always the same. keep: the layer
        holds weights this model was started from (transfer): only freeze it. New filters would not be the ones
        the later layers learned on (an eigenvector's sign and order are arbitrary), scrambling their input."""
        conv = self.stem[0]
        if keep:
            conv.weight.requires_grad_(False)
            return
        c, k = conv.in_channels, conv.kernel_size[0]
        x = x[:WHITEN_IMAGES].float()
        if x.shape[-1] >= k and x.shape[-2] >= k and len(x):
            patches = x.unfold(2, k, 1).unfold(3, k, 1)  # [N, C, H', W', k, k]
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
            patches = patches - patches.mean(0)
            cov = patches.T @ patches / max(1, len(patches) - 1)
            eigval, eigvec = torch.linalg.eigh(cov)  # ascending
            filters = (eigvec.T / (eigval.clamp_min(0) + WHITEN_EPS).sqrt()[:, None]).flip(0)
            filters = filters.reshape(c * k * k, c, k, k).float()
            conv.weight.copy_(torch.cat([filters, -filters]))
            conv.bias.zero_()
        conv.weight.requires_grad_(False)


def _ceil_pool(ceil_pool: bool | None, input_size) -> bool:
    """Round pooled sizes down unless the input is so small (< 9 px) that the last map would vanish."""
    if ceil_pool is not None:
        return bool(ceil_pool)
    side = min(input_size) if isinstance(input_size, (tuple, list)) else int(input_size or 32)
    return side < 9


# airbench94's settings (logits x 1/9 for its large learning rate, BN scales frozen at 1), tuned on CIFAR-10
AIRBENCH = {"logit_scale": 0.1111, "bn_weight": False}


@register_model("fastnet", "image",
                "airbench-style shallow-wide net (frozen whitening stem, 3 conv groups 32/64/128), ~0.3M params",
                defaults=AIRBENCH)
def fastnet(num_classes: int, in_channels: int, input_size, widths=(32, 64, 128), dropout: float = 0.0,
            logit_scale: float = 1.0, bn_weight: bool = True, ceil_pool: bool | None = None):
    return FastNet(num_classes, in_channels, widths=tuple(widths), dropout=dropout, logit_scale=logit_scale,
                   bn_weight=bn_weight, ceil_pool=_ceil_pool(ceil_pool, input_size))


@register_model("fastnet_wide", "image", "fastnet at airbench94's widths 64/256/256 (~2M params; GPU or patience)",
                defaults=AIRBENCH)
def fastnet_wide(num_classes: int, in_channels: int, input_size, widths=(64, 256, 256), dropout: float = 0.0,
                 logit_scale: float = 1.0, bn_weight: bool = True, ceil_pool: bool | None = None):
    return fastnet(num_classes, in_channels, input_size, widths, dropout, logit_scale, bn_weight, ceil_pool)

"""Pieces every CTC acoustic model shares: time subsampling, length bookkeeping, the output layer's blank bias.

Subsampling (model.subsample) sets the output frame rate: 2, 4 (the default, 40 ms frames at a 10 ms hop) or 8.
Fewer frames make each step cheaper and the CTC alignment shorter, but a transcript needs at least one frame per
unit (plus one between repeated units), so 8x suits subword units better than characters."""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.errors import ConfigError

FACTORS = (2, 4, 8)


def check_factor(factor: int) -> int:
    if isinstance(factor, bool) or factor not in FACTORS:
        raise ConfigError(f"model.subsample must be one of {', '.join(map(str, FACTORS))}, got {factor!r}")
    return int(factor)


def pad_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """[B, T] True where a frame is padding (the form nn.MultiheadAttention's key_padding_mask wants)."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


def halve(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after a stride-2 convolution with kernel 3 and padding 1: ceil(T / 2)."""
    return (lengths - 1) // 2 + 1


class ConvSubsample(nn.Module):
    """log2(factor) 3x3 convs with stride 2 over (bands, frames), as in the Conformer and ESPnet recipes (two of
    them: time / 4). [B, 1, F, T] -> [B, T', dim]; T' = ceil(T / 2) per conv. Frames past each recording's end are
    zeroed before the first conv and after every conv, so the next conv's window reads zeros there whatever the
    batch holds: a recording gives the same output alone as padded in a batch."""

    def __init__(self, bands: int, dim: int, channels: int = 64, dropout: float = 0.1, factor: int = 4):
        super().__init__()
        self.factor = check_factor(factor)
        stages = self.factor.bit_length() - 1
        layers: list[nn.Module] = []
        f = bands
        for i in range(stages):
            layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            f = (f - 1) // 2 + 1
        self.conv = nn.Sequential(*layers)  # (conv, relu) pairs: the parameter names of the x4 models stay
        self.proj = nn.Sequential(nn.Linear(channels * f, dim), nn.Dropout(dropout))

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in range(len(self.conv) // 2):
            lengths = halve(lengths)
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        n = lengths
        x = x * (~pad_mask(n, x.shape[-1])).to(x.dtype)[:, None, None, :]
        for i in range(0, len(self.conv), 2):
            x = self.conv[i + 1](self.conv[i](x))
            n = halve(n)
            x = x * (~pad_mask(n, x.shape[-1])).to(x.dtype)[:, None, None, :]
        b, c, f, t = x.shape
        return self.proj(x.reshape(b, c * f, t).transpose(1, 2)), n.clamp(max=t)


class StackSubsample(nn.Module):
    """Stack `factor` consecutive frames into one vector (no context across the cut, so it streams exactly in
    chunks of `factor` frames). [B, 1, F, T] -> [B, ceil(T / factor), dim]. Frames past a recording's end are
    zeroed, as the zero padding of a recording alone."""

    def __init__(self, bands: int, dim: int, factor: int = 4, dropout: float = 0.1):
        super().__init__()
        self.factor = check_factor(factor)
        self.norm = nn.LayerNorm(bands * self.factor)
        self.proj = nn.Sequential(nn.Linear(bands * self.factor, dim), nn.Dropout(dropout))

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + self.factor - 1) // self.factor

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        b, _, f, t = x.shape
        pad = (-t) % self.factor
        x = x[:, 0] * (~pad_mask(lengths, t)).to(x.dtype)[:, None, :]
        x = nn.functional.pad(x, (0, pad))  # [B, F, T + pad]
        x = x.transpose(1, 2).reshape(b, (t + pad) // self.factor, self.factor * f)
        return self.proj(self.norm(x)), self.out_lengths(lengths)


def output_layer(model: nn.Module) -> nn.Linear:
    """The linear layer that gives a CTC model's unit logits (the last one in its `head`)."""
    head = model.head
    layers = [m for m in head.modules() if isinstance(m, nn.Linear)] if not isinstance(head, nn.Linear) else [head]
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no linear output layer to set the blank bias of")
    return layers[-1]


def set_blank_bias(model: nn.Module, value: float, blank: int = 0) -> None:
    """Start the blank unit's logit at `value` (model.blank_bias): > 0 makes blank likelier than the other units
    from the first step (CTC's outputs are mostly blank once trained), < 0 less likely."""
    with torch.no_grad():
        output_layer(model).bias[blank] = float(value)

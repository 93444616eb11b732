"""Conformer CTC model: Gulati et al. 2020 (arXiv:2005.08100), the encoder most ASR toolkits (NeMo, ESPnet,
SpeechBrain) train with CTC. Conv subsampling (x4 by default: 40 ms frames; model.subsample 2/4/8), torchaudio's
Conformer blocks with padding masks, a linear layer to the units. `forward(..., inter=True)` also returns the
logits of the middle block through the same output layer (intermediate CTC, train.inter_ctc_weight)."""
from __future__ import annotations

import torch
import torch.nn as nn
from torchaudio.models import Conformer

from seehear.models.asr.common import ConvSubsample, pad_mask
from seehear.models.registry import register_model


class _MaskedConv(nn.Module):
    """torchaudio's conformer depthwise convolution reads across the end of a shorter recording into the batch
    padding; zeroing padded frames right before it (as ESPnet does) makes a recording's output independent of
    the batch it is in."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv, self.keep = conv, None  # keep: [B, 1, T], set per forward by ConformerCTC.encode

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        if self.keep is not None:
            x = x * self.keep.to(x.dtype)
        return self.conv(x)


class ConformerCTC(nn.Module):
    supports_inter_ctc = True

    def __init__(self, num_classes: int, bands: int, dim: int, layers: int, heads: int, ffn_dim: int,
                 kernel_size: int, subsample_channels: int, dropout: float, subsample: int = 4):
        super().__init__()
        self.subsample = ConvSubsample(bands, dim, subsample_channels, dropout, subsample)
        self.encoder = Conformer(input_dim=dim, num_heads=heads, ffn_dim=ffn_dim, num_layers=layers,
                                 depthwise_conv_kernel_size=kernel_size, dropout=dropout)
        self._masked = []
        for layer in self.encoder.conformer_layers:
            seq = layer.conv_module.sequential
            seq[2] = _MaskedConv(seq[2])  # pointwise conv, GLU, *depthwise conv*, norm, ...
            self._masked.append(seq[2])
        self.embed_dim = dim
        self.head = nn.Linear(dim, num_classes)
        self.frame_factor = self.subsample.factor  # input frames per output frame
        self.inter_layer = max(1, layers // 2)  # intermediate CTC reads the output of this many blocks

    def encode(self, x: torch.Tensor, lengths: torch.Tensor, inter: bool = False):
        """-> (frames [B, T', D], lengths) or, with inter, (frames, lengths, the middle block's frames)."""
        h, n = self.subsample(x, lengths)
        n = n.clamp(min=1)
        mask = pad_mask(n, h.shape[1])
        keep = (~mask)[:, None, :]  # [B, 1, T]
        for m in self._masked:
            m.keep = keep
        middle = None
        try:
            z = h.transpose(0, 1)  # torchaudio's blocks take [T, B, D]
            for i, layer in enumerate(self.encoder.conformer_layers, 1):
                z = layer(z, mask)
                if i == self.inter_layer:
                    middle = z
        finally:
            for m in self._masked:
                m.keep = None
        out = z.transpose(0, 1)
        return (out, n, middle.transpose(0, 1)) if inter else (out, n)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, inter: bool = False):
        if inter:
            h, n, mid = self.encode(x, lengths, inter=True)
            return self.head(h), n, self.head(mid)
        h, n = self.encode(x, lengths)
        return self.head(h), n


@register_model("conformer_ctc", "audio", "Conformer CTC, 6 blocks x dim 144, 4 heads, ~3.1M params",
                sequence=True, task="transcribe")
def conformer_ctc(num_classes: int, in_channels: int, input_size, dim: int = 144, layers: int = 6, heads: int = 4,
                  ffn_dim: int = 576, kernel_size: int = 15, subsample_channels: int = 64, dropout: float = 0.1,
                  subsample: int = 4):
    return ConformerCTC(num_classes, int(input_size[0]), dim, layers, heads, ffn_dim, kernel_size,
                        subsample_channels, dropout, subsample)


@register_model("conformer_ctc_tiny", "audio", "Conformer CTC, 2 blocks x dim 64 (tests, tiny data)",
                sequence=True, task="transcribe")
def conformer_ctc_tiny(num_classes: int, in_channels: int, input_size, dim: int = 64, layers: int = 2,
                       heads: int = 2, ffn_dim: int = 128, kernel_size: int = 15, subsample_channels: int = 16,
                       dropout: float = 0.1, subsample: int = 4):
    return ConformerCTC(num_classes, int(input_size[0]), dim, layers, heads, ffn_dim, kernel_size,
                        subsample_channels, dropout, subsample)

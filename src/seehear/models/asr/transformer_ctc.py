"""Transformer-encoder CTC model (Vaswani et al. 2017 encoder over conv-subsampled frames, sinusoidal
positions), the classic baseline the Conformer improved on."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from seehear.models.asr.common import ConvSubsample, pad_mask
from seehear.models.registry import register_model


def sinusoids(t: int, dim: int, device) -> torch.Tensor:
    pos = torch.arange(t, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(t, dim, device=device)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)[:, : dim // 2]
    return pe


class TransformerCTC(nn.Module):
    def __init__(self, num_classes: int, bands: int, dim: int, layers: int, heads: int, ffn_dim: int,
                 dropout: float):
        super().__init__()
        self.subsample = ConvSubsample(bands, dim, 64, dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ffn_dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.embed_dim, self.frame_factor = dim, 4
        self.head = nn.Linear(dim, num_classes)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor):
        h, n = self.subsample(x, lengths)
        h = h * math.sqrt(h.shape[-1]) + sinusoids(h.shape[1], h.shape[-1], h.device).to(h.dtype)
        return self.norm(self.encoder(h, src_key_padding_mask=pad_mask(n, h.shape[1]))), n

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h, n = self.encode(x, lengths)
        return self.head(h), n


@register_model("transformer_ctc", "audio", "Transformer encoder CTC, 6 layers x dim 192, 4 heads, ~3.0M params",
                sequence=True, task="transcribe")
def transformer_ctc(num_classes: int, in_channels: int, input_size, dim: int = 192, layers: int = 6,
                    heads: int = 4, ffn_dim: int = 768, dropout: float = 0.1):
    return TransformerCTC(num_classes, int(input_size[0]), dim, layers, heads, ffn_dim, dropout)

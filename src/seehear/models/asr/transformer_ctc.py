"""Transformer-encoder CTC model (Vaswani et al. 2017 encoder over conv-subsampled frames, sinusoidal
positions), the classic baseline the Conformer improved on. model.subsample 2/4/8 (default 4); `forward(...,
inter=True)` also returns the middle layer's logits through the same norm and output layer (intermediate CTC)."""
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
    supports_inter_ctc = True

    def __init__(self, num_classes: int, bands: int, dim: int, layers: int, heads: int, ffn_dim: int,
                 dropout: float, subsample: int = 4):
        super().__init__()
        self.subsample = ConvSubsample(bands, dim, 64, dropout, subsample)
        layer = nn.TransformerEncoderLayer(dim, heads, ffn_dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.embed_dim, self.frame_factor = dim, self.subsample.factor
        self.head = nn.Linear(dim, num_classes)
        self.inter_layer = max(1, layers // 2)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor, inter: bool = False):
        h, n = self.subsample(x, lengths)
        h = h * math.sqrt(h.shape[-1]) + sinusoids(h.shape[1], h.shape[-1], h.device).to(h.dtype)
        mask = pad_mask(n, h.shape[1])
        middle = None
        for i, layer in enumerate(self.encoder.layers, 1):
            h = layer(h, src_key_padding_mask=mask)
            if i == self.inter_layer:
                middle = h
        return (self.norm(h), n, self.norm(middle)) if inter else (self.norm(h), n)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, inter: bool = False):
        if inter:
            h, n, mid = self.encode(x, lengths, inter=True)
            return self.head(h), n, self.head(mid)
        h, n = self.encode(x, lengths)
        return self.head(h), n


@register_model("transformer_ctc", "audio", "Transformer encoder CTC, 6 layers x dim 192, 4 heads, ~3.0M params",
                sequence=True, task="transcribe")
def transformer_ctc(num_classes: int, in_channels: int, input_size, dim: int = 192, layers: int = 6,
                    heads: int = 4, ffn_dim: int = 768, dropout: float = 0.1, subsample: int = 4):
    return TransformerCTC(num_classes, int(input_size[0]), dim, layers, heads, ffn_dim, dropout, subsample)

"""BiLSTM over feature frames: each frame's F bands (times channels) are one input vector.

A plain recurrent baseline for short commands and the encoder for sequence heads (CTC) later: bidirectional LSTMs
(Hochreiter & Schmidhuber 1997; Graves & Schmidhuber 2005, "Framewise phoneme classification with bidirectional
LSTM") over LayerNorm'ed frames. encode(x) -> [B, T, 2 * hidden]; the classifier sees the mean over time.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


class BiLSTM(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size, hidden: int = 64, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        d_in = in_channels * int(input_size[0])
        self.norm = nn.LayerNorm(d_in)
        self.lstm = nn.LSTM(d_in, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.embed_dim = 2 * hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        x = self.norm(x.reshape(b, c * f, t).transpose(1, 2))  # [B, T, C*F]
        return self.lstm(x)[0]  # [B, T, 2H]

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.encode(x))))


@register_model("lstm", "audio", "2-layer BiLSTM (hidden 64) over frames, ~0.15M params", sequence=True)
def lstm(num_classes: int, in_channels: int, input_size, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
    return BiLSTM(num_classes, in_channels, input_size, hidden=hidden, layers=layers, dropout=dropout)

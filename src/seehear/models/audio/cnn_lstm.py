"""Conv front end + BiLSTM (a CRNN, as in Sainath et al. 2015, "Convolutional, Long Short-Term Memory, Fully
Connected Deep Neural Networks", and Arik et al. 2017, "Convolutional Recurrent Neural Networks for Small-Footprint
Keyword Spotting").

Two conv-BN-ReLU blocks learn local time-frequency patterns and shrink the map (frequency by 4, time by 2), then a
bidirectional LSTM models the sequence. encode(x) -> [B, ceil(T/2), 2 * hidden]; the classifier sees the mean.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


def _pooled(n: int) -> int:
    return -(-n // 2)  # MaxPool2d(2, ceil_mode=True)


class CNNLSTM(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size, channels: int = 16, hidden: int = 64,
                 layers: int = 1, dropout: float = 0.1):
        super().__init__()
        c = int(channels)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.MaxPool2d((2, 2), ceil_mode=True),
            nn.Conv2d(c, 2 * c, 3, padding=1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(inplace=True),
            nn.MaxPool2d((2, 1), ceil_mode=True),
        )
        f_out = _pooled(_pooled(int(input_size[0])))
        self.proj = nn.Sequential(nn.Linear(2 * c * f_out, 2 * hidden), nn.Dropout(dropout))
        self.lstm = nn.LSTM(2 * hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.embed_dim = 2 * hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # [B, 2c, F/4, T/2]
        b, c, f, t = x.shape
        x = self.proj(x.reshape(b, c * f, t).transpose(1, 2))
        return self.lstm(x)[0]  # [B, T/2, 2H]

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.encode(x))))


@register_model("cnn_lstm", "audio", "2 conv blocks + BiLSTM (hidden 64), a CRNN, ~0.15M params", sequence=True)
def cnn_lstm(num_classes: int, in_channels: int, input_size, channels: int = 16, hidden: int = 64, layers: int = 1,
             dropout: float = 0.1):
    return CNNLSTM(num_classes, in_channels, input_size, channels=channels, hidden=hidden, layers=layers,
                   dropout=dropout)

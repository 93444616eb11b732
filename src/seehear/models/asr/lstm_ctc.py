"""Recurrent CTC models (Graves et al. 2006, "Connectionist Temporal Classification"): frames stacked x4 (or 2 / 8:
model.subsample), then LSTMs. `bilstm_ctc` reads the whole utterance both ways (offline); `lstm_ctc_stream` reads
left to right and sees `lookahead` output frames (40 ms each at x4) of the future through a final convolution, so it
can transcribe audio as it arrives with a delay of lookahead x 40 ms (seehear.speech.streaming), and gives the same
output either way."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seehear.models.asr.common import StackSubsample
from seehear.models.registry import register_model


class BiLSTMCTC(nn.Module):
    def __init__(self, num_classes: int, bands: int, hidden: int, layers: int, dropout: float, subsample: int = 4):
        super().__init__()
        self.subsample = StackSubsample(bands, 2 * hidden, subsample, dropout)
        self.lstm = nn.LSTM(2 * hidden, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.embed_dim, self.frame_factor = 2 * hidden, self.subsample.factor
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, num_classes))

    def encode(self, x: torch.Tensor, lengths: torch.Tensor):
        h, n = self.subsample(x, lengths)
        # packed, so the backward direction starts at each utterance's own end, not in the padding
        packed = pack_padded_sequence(h, n.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])[0], n

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h, n = self.encode(x, lengths)
        return self.head(h), n


class StreamingLSTMCTC(nn.Module):
    """Unidirectional; state = (LSTM (h, c), the last `lookahead` LSTM outputs). `step` continues from a state,
    so chunked input gives exactly what the whole input gives."""

    def __init__(self, num_classes: int, bands: int, hidden: int, layers: int, lookahead: int, dropout: float,
                 subsample: int = 4):
        super().__init__()
        self.subsample = StackSubsample(bands, hidden, subsample, dropout)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.lookahead = int(lookahead)
        # output t sees LSTM outputs t .. t + lookahead
        self.future = nn.Conv1d(hidden, hidden, self.lookahead + 1)
        self.embed_dim, self.frame_factor = hidden, self.subsample.factor
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def _finish(self, o: torch.Tensor) -> torch.Tensor:
        return self.head(self.future(o.transpose(1, 2)).transpose(1, 2))

    def encode(self, x: torch.Tensor, lengths: torch.Tensor):
        """-> (frames [B, T', hidden] before the output layer, lengths): what self-supervised pretraining trains."""
        h, n = self.subsample(x, lengths)
        o, _ = self.lstm(h)
        # zeros stand for the future past the end (of each recording in the batch), as `flush` does
        o = o * (torch.arange(o.shape[1], device=o.device)[None, :, None] < n[:, None, None]).to(o.dtype)
        o = nn.functional.pad(o, (0, 0, 0, self.lookahead))
        return self.future(o.transpose(1, 2)).transpose(1, 2), n

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h, n = self.encode(x, lengths)
        return self.head(h), n

    def step(self, x: torch.Tensor, state=None):
        """x [1, 1, F, k * frame_factor] new feature frames -> (logits of the output frames now final, new state)."""
        h, _ = self.subsample(x, torch.tensor([x.shape[-1]]))
        lstm_state, tail = (None, h.new_zeros(1, 0, self.lstm.hidden_size)) if state is None else state
        o, lstm_state = self.lstm(h, lstm_state)
        o = torch.cat([tail, o], dim=1)
        ready = max(0, o.shape[1] - self.lookahead)
        logits = self._finish(o) if ready else o.new_zeros(1, 0, self.head[-1].out_features)
        return logits, (lstm_state, o[:, ready:])

    def flush(self, state) -> torch.Tensor:
        """Logits of the frames held back for look-ahead, at the end of a stream."""
        if state is None:
            return torch.zeros(1, 0, self.head[-1].out_features)
        tail = state[1]
        return self._finish(nn.functional.pad(tail, (0, 0, 0, self.lookahead)))[:, : tail.shape[1]]


@register_model("bilstm_ctc", "audio", "3-layer BiLSTM CTC (hidden 256) over 4-stacked frames, ~5M params",
                sequence=True, task="transcribe")
def bilstm_ctc(num_classes: int, in_channels: int, input_size, hidden: int = 256, layers: int = 3,
               dropout: float = 0.1, subsample: int = 4):
    return BiLSTMCTC(num_classes, int(input_size[0]), hidden, layers, dropout, subsample)


@register_model("lstm_ctc_stream", "audio", "streaming 3-layer LSTM CTC (hidden 320), 3 frames (120 ms) of "
                "look-ahead, ~3.1M params", sequence=True, task="transcribe")
def lstm_ctc_stream(num_classes: int, in_channels: int, input_size, hidden: int = 320, layers: int = 3,
                    lookahead: int = 3, dropout: float = 0.1, subsample: int = 4):
    return StreamingLSTMCTC(num_classes, int(input_size[0]), hidden, layers, lookahead, dropout, subsample)

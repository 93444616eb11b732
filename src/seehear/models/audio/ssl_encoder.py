"""A transcription model's encoder as a clip classifier (`ssl_encoder`): the encoder (models/asr: conformer_ctc*,
transformer_ctc, bilstm_ctc, lstm_ctc_stream) reads the clip's frames, their mean is the clip's vector, a linear
layer gives the classes. It exists so that a speech encoder pretrained without labels (`seehear pretrain AUDIO_DIR`,
BEST-RQ) or trained on transcripts starts keyword classification: `seehear train DATA --from runs/ssl-audio` picks
it, with the source's encoder and settings. The encoder keeps its parameter names under `acoustic.` (its CTC output
layer dropped), so a Transcriber's weights load as they are."""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import create_model, get_spec, register_model


class EncoderClassifier(nn.Module):
    def __init__(self, acoustic: nn.Module, dim: int, num_classes: int):
        super().__init__()
        acoustic.head = nn.Identity()  # the unit-output layer: not part of the encoder
        self.acoustic = acoustic
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, F, T], every clip the same length
        if x.shape[1] != 1:  # the speech encoders read one feature plane
            x = x.mean(1, keepdim=True)
        lengths = torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
        h, _ = self.acoustic.encode(x, lengths)
        return self.classifier(h.mean(1))


@register_model("ssl_encoder", "audio", "a transcription model's encoder (kwarg encoder, default conformer_ctc_tiny) "
                "+ mean pooling + linear; what `train --from` a speech pretraining run uses", sequence=False)
def ssl_encoder(num_classes: int, in_channels: int, input_size, encoder: str = "conformer_ctc_tiny", **kwargs):
    from seehear.errors import ConfigError

    if get_spec(encoder).task != "transcribe":
        raise ConfigError(f"ssl_encoder: encoder {encoder!r} is not a transcription model (conformer_ctc_tiny, "
                          f"conformer_ctc, transformer_ctc, bilstm_ctc, lstm_ctc_stream)")
    acoustic = create_model(encoder, num_classes=1, in_channels=1, input_size=input_size, **kwargs)
    return EncoderClassifier(acoustic, int(acoustic.embed_dim), num_classes)

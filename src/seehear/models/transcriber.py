"""A Transcriber is the whole trained speech-to-text thing: front end + CTC acoustic model + its output units.

It takes raw waveforms of different lengths ([B, S] float or int16, zero-padded, with their lengths) so that
transcription, streaming and export never re-implement feature extraction. Normalisation is masked: padding never
enters an utterance's mean and variance.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.config import RunConfig
from seehear.models.registry import create_model, get_spec


def masked_normalize(x: torch.Tensor, frames: torch.Tensor, mode: str, eps: float = 1e-5) -> torch.Tensor:
    """x [B, F, T]; 'utterance' = per band over the valid frames (CMVN), 'global' = over bands and valid frames,
    'none' = as they are. Frames past a recording's end come out zero in every mode."""
    valid = (torch.arange(x.shape[-1], device=x.device)[None, :] < frames[:, None]).to(x.dtype)[:, None, :]
    if mode == "none":
        return x * valid
    dims = (-1,) if mode == "utterance" else (-2, -1)
    count = valid.sum(dim=dims, keepdim=True) * (1 if mode == "utterance" else x.shape[1])
    count = count.clamp(min=1)
    mean = (x * valid).sum(dim=dims, keepdim=True) / count
    var = (((x - mean) * valid) ** 2).sum(dim=dims, keepdim=True) / count
    return (x - mean) * torch.rsqrt(var + eps) * valid


class Transcriber(nn.Module):
    def __init__(self, frontend: nn.Module, acoustic: nn.Module, tokens: list[str], normalize: str,
                 specaugment: nn.Module | None = None, vtlp: nn.Module | None = None):
        super().__init__()
        self.frontend, self.acoustic, self.specaugment = frontend, acoustic, specaugment
        self.vtlp = vtlp  # per-utterance filterbank warp (features/vtlp.py), training only: voices never heard
        self.tokens, self.normalize = list(tokens), normalize
        self.hop = frontend.hop_length
        self.frame_seconds = self.hop * getattr(acoustic, "frame_factor", 4) / frontend.sample_rate

    def frames(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return 1 + sample_lengths // self.hop  # centred framing, as the front end does

    def features(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.frames(lengths)
        warp = self.vtlp.factors(len(wave), wave.device) if self.vtlp is not None and self.training else None
        f = masked_normalize(self.frontend(wave, warp=warp)[:, 0], frames, self.normalize)[:, None]  # [B,1,F,T]
        if self.specaugment is not None and self.training:
            f = self.specaugment(f)
        return f, frames

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> log-probabilities [B, T', V] (float32) and their lengths [B]."""
        f, frames = self.features(wave, lengths)
        logits, out_lengths = self.acoustic(f, frames)
        return torch.log_softmax(logits.float(), dim=-1), out_lengths

    def forward_inter(self, wave: torch.Tensor, lengths: torch.Tensor):
        """-> (log-probabilities, lengths, the middle block's log-probabilities) for intermediate CTC."""
        f, frames = self.features(wave, lengths)
        logits, out_lengths, middle = self.acoustic(f, frames, inter=True)
        return (torch.log_softmax(logits.float(), dim=-1), out_lengths,
                torch.log_softmax(middle.float(), dim=-1))


def build_transcriber(cfg: RunConfig, tokens: list[str]) -> Transcriber:
    from seehear.errors import ConfigError
    from seehear.features.audio import build_audio_frontend, feature_bands
    from seehear.features.augment import SpecAugment

    spec = get_spec(cfg.model.name)
    if spec.task != "transcribe":
        raise ConfigError(f"model {spec.name} is not a transcription model; pick one of "
                          f"`seehear models --task transcribe`")
    audio = cfg.audio
    frontend = build_audio_frontend(type(audio)(**{**audio.__dict__, "normalize": "none"}))
    g = cfg.augment
    specaug = SpecAugment(g.freq_masks, g.freq_width, g.time_masks, g.time_width) \
        if (g.freq_masks or g.time_masks) else None
    kwargs = dict(cfg.model.kwargs)
    if cfg.model.subsample is not None:
        if kwargs.get("subsample", cfg.model.subsample) != cfg.model.subsample:
            raise ConfigError(f"model.subsample={cfg.model.subsample} and model.kwargs.subsample="
                              f"{kwargs['subsample']} disagree; set one of them")
        kwargs["subsample"] = cfg.model.subsample
    if not 0.0 <= cfg.train.inter_ctc_weight < 1.0:
        raise ConfigError(f"train.inter_ctc_weight must be in [0, 1), got {cfg.train.inter_ctc_weight}")
    acoustic = create_model(cfg.model.name, num_classes=len(tokens), in_channels=1,
                            input_size=(feature_bands(audio), 0), **kwargs)
    if cfg.train.inter_ctc_weight and not getattr(acoustic, "supports_inter_ctc", False):
        raise ConfigError(f"train.inter_ctc_weight needs a model with a middle block to read (conformer_ctc*, "
                          f"transformer_ctc), not {spec.name}")
    if cfg.model.blank_bias is not None:
        from seehear.models.asr.common import set_blank_bias

        set_blank_bias(acoustic, cfg.model.blank_bias)
    vtlp = None
    if g.vtlp:
        from seehear.features.vtlp import VTLP, check_range

        vtlp = VTLP(*check_range(g.vtlp))
    return Transcriber(frontend, acoustic, tokens, audio.normalize, specaug, vtlp)

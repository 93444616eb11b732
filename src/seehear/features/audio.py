"""Audio front ends: waveform batches [B, S] -> log-mel or MFCC images [B, 1, F, T].

In eager mode the STFT is `torch.stft` (an FFT, the fastest on CPU). For ONNX export it is written as framing plus
one matmul against a windowed real-DFT basis, because that exports with plain ops and gives the same numbers. The
framing and the matmul are fused as one strided conv1d whose filters are the basis (identical maths; unlike
Tensor.unfold it exports with both ONNX exporters and dynamic batch/length, at the same CPU speed). It
matches `torchaudio.transforms.MelSpectrogram(power=2, center=True, pad_mode="reflect", mel_scale="htk",
norm=None)` followed by `log(x + 1e-6)` to well within 1e-3.

Mel scale: HTK (torchaudio's default, and what most keyword-spotting recipes use), no area normalisation.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio.functional as AF

from seehear.data.decode import pcm_to_float
from seehear.errors import ConfigError

LOG_EPS = 1e-6


def utterance_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per clip, per band: zero mean and unit std over time (cepstral mean-variance normalisation). Removes the
    channel / microphone / voice colouring that is constant over a clip, which helps on unseen speakers."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


def global_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per clip: zero mean and unit std over all bands and frames together. Removes loudness (a log offset) but,
    unlike 'utterance', keeps the spectral tilt and each band's level and variation over time (which carry
    emotion, stress and speaker cues)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


NORMALIZERS = {"utterance": utterance_normalize, "global": global_normalize, "none": None}


class LogMel(nn.Module):
    """Log mel spectrogram, [B, S] float (or int16) -> [B, 1, n_mels, 1 + S // hop_length] float32."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 n_mels: int = 40, f_min: float = 20.0, f_max: float | None = None, normalize: str = "utterance"):
        super().__init__()
        if win_length > n_fft:
            raise ConfigError(f"audio.win_length ({win_length}) must be <= audio.n_fft ({n_fft})")
        if normalize not in NORMALIZERS:
            raise ConfigError(f"audio.normalize must be one of {', '.join(NORMALIZERS)}, got {normalize!r}")
        f_max = float(f_max) if f_max is not None else sample_rate / 2.0
        if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
            raise ConfigError(f"audio.f_min/f_max must satisfy 0 <= f_min < f_max <= sample_rate/2, "
                              f"got {f_min}, {f_max} at {sample_rate} Hz")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.f_min, self.f_max, self.normalize = n_mels, f_min, f_max, normalize

        # Hann window of win_length, zero-padded to n_fft and centred, as torch.stft does.
        win = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
        left = (n_fft - win_length) // 2
        win = F.pad(win, (left, n_fft - win_length - left))
        n_freqs = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_freqs, dtype=torch.float64)
        ang = 2 * math.pi * torch.outer(n, k) / n_fft  # [n_fft, n_freqs]
        basis = torch.cat([torch.cos(ang), -torch.sin(ang)], dim=1) * win[:, None]  # [n_fft, 2 * n_freqs]
        fb = AF.melscale_fbanks(n_freqs, float(f_min), f_max, n_mels, sample_rate, norm=None, mel_scale="htk")
        # Derived from the settings, so not saved in checkpoints (persistent=False).
        self.register_buffer("basis", basis.t().float().contiguous()[:, None, :], persistent=False)  # [2F, 1, n_fft]
        self.register_buffer("fbank", fb.float(), persistent=False)  # [n_freqs, n_mels]
        self.register_buffer("window", win.float(), persistent=False)  # [n_fft], for the torch.stft path

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length

    def power_mel(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """[B, S] -> mel power [B, n_mels, T] (float32), frames centred on every hop (reflect-padded ends). warp
        [B]: per-clip VTLP factors (features/vtlp.py), training only; None = the front end's own filterbank."""
        x = pcm_to_float(wave)
        if x.dim() == 1:
            x = x[None]
        pad = self.n_fft // 2
        # reflect (torchaudio's default) needs more samples than the pad; very short clips fall back to zeros
        mode = "reflect" if x.shape[-1] > pad else "constant"
        return self.framed_power(F.pad(x[:, None], (pad, pad), mode=mode)[:, 0], warp)

    def warped_fbank(self, warp: torch.Tensor) -> torch.Tensor:
        """[B, n_freqs, n_mels]: this front end's mel filterbank warped by warp[i] per clip (VTLP)."""
        from seehear.features.vtlp import warped_fbanks

        return warped_fbanks(warp, self.fbank.shape[0], self.f_min, self.f_max, self.n_mels, self.sample_rate)

    def framed_power(self, padded: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """Mel power of samples already padded [B, S'] -> [B, n_mels, T]: a frame of n_fft every hop, no padding
        added (streaming feeds the samples it has; power_mel pads whole clips first)."""
        if not torch.onnx.is_in_onnx_export():
            # Eager and GPU: the FFT (O(n log n)) is ~1.7x faster than the DFT matmul on CPU; same numbers.
            spec = torch.stft(padded, self.n_fft, self.hop_length, self.n_fft, self.window, center=False,
                              return_complex=True)  # [B, n_freqs, T]
            if warp is not None:
                return self.warped_fbank(warp).transpose(1, 2) @ spec.abs().square()
            return self.fbank.t() @ spec.abs().square()
        # frames of n_fft every hop, times the windowed DFT basis: real and imaginary parts in one op
        spec = F.conv1d(padded[:, None], self.basis, stride=self.hop_length)  # [B, 2 * n_freqs, T]
        re, im = spec.chunk(2, dim=1)
        fb = self.fbank.t() if warp is None else self.warped_fbank(warp).transpose(1, 2)
        return fb @ (re * re + im * im)  # [B, n_mels, T]

    def bands(self, power: torch.Tensor) -> torch.Tensor:
        """Mel power [B, n_mels, T] -> the feature bands [B, F, T] (log-mel here; cepstra in MFCC)."""
        return torch.log(power + LOG_EPS)

    def frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Unnormalised features [B, F, T] of already padded samples (see framed_power): what streaming
        computes as audio arrives, equal to forward's frames before normalisation."""
        return self.bands(self.framed_power(padded))

    def _features(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        return self.bands(self.power_mel(wave, warp))

    def forward(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """warp [B]: per-clip VTLP factors, given by the Recognizer in training only (see features/vtlp.py)."""
        # The front end always runs in float32: bf16 has too few mantissa bits for power spectra and logs.
        if torch.is_autocast_enabled(wave.device.type):
            with torch.autocast(device_type=wave.device.type, enabled=False):
                return self._forward32(wave, warp)
        return self._forward32(wave, warp)

    def _forward32(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        x = self._features(wave, warp)
        norm = NORMALIZERS[self.normalize]
        return (norm(x) if norm is not None else x)[:, None]  # [B, 1, F, T]

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
                f"hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}, "
                f"normalize={self.normalize!r}")


class MFCC(LogMel):
    """MFCCs: DCT-II (orthonormal) of the log-mel bands, [B, S] -> [B, 1, n_mfcc, T]. Normalisation is applied to
    the cepstra ('utterance' is classic CMVN)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 n_mels: int = 40, f_min: float = 20.0, f_max: float | None = None, normalize: str = "utterance",
                 n_mfcc: int = 40):
        super().__init__(sample_rate, n_fft, win_length, hop_length, n_mels, f_min, f_max, normalize)
        if not 1 <= n_mfcc <= n_mels:
            raise ConfigError(f"audio.n_mfcc ({n_mfcc}) must be between 1 and audio.n_mels ({n_mels})")
        self.n_mfcc = n_mfcc
        self.register_buffer("dct", AF.create_dct(n_mfcc, n_mels, norm="ortho").float(), persistent=False)

    def bands(self, power: torch.Tensor) -> torch.Tensor:
        logmel = super().bands(power)  # [B, n_mels, T]
        return (logmel.transpose(1, 2) @ self.dct).transpose(1, 2)  # [B, n_mfcc, T]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_mfcc={self.n_mfcc}"


def num_samples(audio_cfg) -> int:
    """Samples per clip after crop/pad to clip_seconds."""
    return int(round(audio_cfg.sample_rate * audio_cfg.clip_seconds))


def num_frames(audio_cfg) -> int:
    """Feature frames T for one clip of clip_seconds (center=True framing: 1 + S // hop)."""
    return 1 + num_samples(audio_cfg) // audio_cfg.hop_length


frames = num_frames  # the name used in docs/ARCHITECTURE.md


def feature_bands(audio_cfg) -> int:
    """F, the height of the feature image."""
    return audio_cfg.n_mfcc if audio_cfg.features == "mfcc" else audio_cfg.n_mels


def build_audio_frontend(audio_cfg) -> nn.Module:
    """LogMel or MFCC from an AudioConfig."""
    common = dict(sample_rate=audio_cfg.sample_rate, n_fft=audio_cfg.n_fft, win_length=audio_cfg.win_length,
                  hop_length=audio_cfg.hop_length, n_mels=audio_cfg.n_mels, f_min=audio_cfg.f_min,
                  f_max=audio_cfg.f_max, normalize=audio_cfg.normalize)
    if audio_cfg.features == "logmel":
        return LogMel(**common)
    if audio_cfg.features == "mfcc":
        return MFCC(**common, n_mfcc=audio_cfg.n_mfcc)
    raise ConfigError(f"audio.features must be 'logmel' or 'mfcc', got {audio_cfg.features!r}")

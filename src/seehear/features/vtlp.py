"""Vocal-tract-length perturbation (VTLP; Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP) improves
speech recognition"): in training, each clip's mel filterbank is warped along frequency by its own factor alpha,
as if a longer or shorter vocal tract had spoken it. Formants move, tempo and loudness do not.

The warp is piecewise linear in Hz and keeps the filterbank's band edges: a corner frequency f of the HTK mel
triangles goes to f_min + alpha * (f - f_min) up to a boundary, then linearly to f_max, which stays where it is
(Kaldi's VTLN warp, with the boundary at 80% of the band times min(alpha, 1) / alpha as Jaitly & Hinton place
it). alpha = 1 gives the front end's own filterbank exactly. Factors are drawn per clip from a uniform range with
features/rng.py (a torch.Generator when `.generator` is set, else the global RNG that `train.seed` seeds), and
only in training mode: predict, evaluate and ONNX export never see it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from seehear.errors import ConfigError
from seehear.features.rng import uniform

BOUNDARY = 0.8  # share of the band (f_min..f_max) warped by alpha itself; the rest is squeezed to keep f_max


def _hz_to_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_corners(f_min: float, f_max: float, n_mels: int) -> torch.Tensor:
    """The n_mels + 2 corner frequencies (Hz, float64) of HTK mel triangles from f_min to f_max, as torchaudio's
    melscale_fbanks spaces them."""
    m = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def warp_frequencies(f: torch.Tensor, alpha: torch.Tensor, f_min: float, f_max: float) -> torch.Tensor:
    """Warp frequencies f [..., N] by alpha [B] -> [B, N]: f_min and f_max stay; in between piecewise linear,
    slope alpha up to the boundary. Monotone for any alpha > 0."""
    a = alpha.to(torch.float64)[:, None]
    f = f.to(torch.float64)[None]
    span = f_max - f_min
    cut = f_min + BOUNDARY * span * torch.clamp(a, max=1.0) / a  # input frequency of the bend
    at_cut = f_min + a * (cut - f_min)  # where it goes (< f_max)
    low = f_min + a * (f - f_min)
    high = at_cut + (f_max - at_cut) * (f - cut) / (f_max - cut)
    return torch.where(f <= cut, low, high)


def warped_fbanks(alpha: torch.Tensor, n_freqs: int, f_min: float, f_max: float, n_mels: int,
                  sample_rate: int) -> torch.Tensor:
    """[B, n_freqs, n_mels] float32: HTK mel triangles (norm=None, as the front end's) with corners warped by
    alpha[i] per row; each row is a mel filterbank like torchaudio.functional.melscale_fbanks's."""
    corners = warp_frequencies(mel_corners(f_min, f_max, n_mels), alpha.cpu(), f_min, f_max)  # [B, n_mels + 2]
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)  # float32, as torchaudio's
    inv_width = (1.0 / (corners[:, 1:] - corners[:, :-1])).float()  # [B, n_mels + 1]
    slopes = corners.float()[:, None, :] - freqs[None, :, None]  # [B, n_freqs, n_mels + 2]
    down = slopes[..., :-2] * -inv_width[:, None, :-1]
    up = slopes[..., 2:] * inv_width[:, None, 1:]
    return torch.minimum(down, up).clamp_(min=0.0).to(alpha.device)


def check_range(factors) -> tuple[float, float]:
    """augment.vtlp as (lo, hi), or a one-line ConfigError."""
    try:
        lo, hi = float(factors[0]), float(factors[-1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"augment.vtlp must be [lo, hi] warp factors, e.g. [0.9, 1.1], got {factors!r}") from None
    if not 0.5 <= lo <= hi <= 2.0:
        raise ConfigError(f"augment.vtlp must satisfy 0.5 <= lo <= hi <= 2.0 (e.g. [0.9, 1.1]), got {factors!r}")
    return lo, hi


class VTLP(nn.Module):
    """Draws a warp factor per clip, uniform in [lo, hi]; the front end (LogMel.forward(wave, warp=...)) applies
    them. Holds no weights. Set `.generator` for a draw independent of the global RNG."""

    def __init__(self, lo: float = 0.9, hi: float = 1.1):
        super().__init__()
        self.lo, self.hi = check_range([lo, hi])
        self.generator: torch.Generator | None = None

    def factors(self, batch: int, device) -> torch.Tensor:
        return uniform(self.lo, self.hi, batch, self.generator, device)

    def extra_repr(self) -> str:
        return f"lo={self.lo}, hi={self.hi}"


__all__ = ["VTLP", "mel_corners", "warp_frequencies", "warped_fbanks", "check_range"]

"""Data augmentation on whole batches, on the batch's device.

Everything here works on a batch tensor at once (no per-sample Python loops), because on two cores per-sample
augmentation in the training loop costs more than the model (the airbench lesson). Each function takes an optional
`torch.Generator` so that a run is repeatable; random numbers are drawn on the generator's device and moved.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.data.decode import pcm_to_float
from seehear.features.audio_augment import background_noise, load_noise_dir, more_waves
from seehear.features.policies import apply_policies
from seehear.features.rng import numpy_rng, rand, randint, randn

SPEED_LEVELS = 5  # speed perturbation resamples per group of equal factor: a few resample calls per batch


_rand, _randn, _randint = rand, randn, randint  # the short names this file's code uses


# ---------------------------------------------------------------------------------------------------- images


def augment_images(x: torch.Tensor, cfg, generator: torch.Generator | None = None) -> torch.Tensor:
    """The policies of features/policies.py when switched on, then random horizontal flip (cfg.flip), random translation by up to cfg.crop_pad pixels with reflect padding
    (pad once, then one gather picks each sample's crop), then cutout of a cfg.cutout-pixel square (0 = off).
    x: [B, C, H, W] uint8 or float; dtype is kept."""
    b, c, h, w = x.shape
    if b == 0:
        return x
    x = apply_policies(x, cfg, generator)  # resized crop, RandAugment / TrivialAugment / AugMix, colour jitter
    if cfg.flip:
        flip = _rand(b, generator, x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    p = min(int(cfg.crop_pad or 0), h - 1, w - 1)  # reflect padding needs pad < size
    if p > 0:
        padded = F.pad(x, (p, p, p, p), mode="reflect")
        dy = _randint(2 * p + 1, b, generator, x.device)
        dx = _randint(2 * p + 1, b, generator, x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
        bidx = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2).contiguous()
    if cfg.cutout:
        x = cutout(x, int(cfg.cutout), generator)
    return x


def augment_sequences(x: torch.Tensor, cfg, generator: torch.Generator | None = None) -> torch.Tensor:
    """Image sequences [B, T, C, H, W]: augment_images with one draw per sequence, the same flip, translation and
    cutout for all its frames (independent per-frame jitter would add motion that is not there). The frames are
    folded into the channel axis, where augment_images treats every channel of a sample alike."""
    b, t, c, h, w = x.shape
    return augment_images(x.reshape(b, t * c, h, w), cfg, generator).reshape(b, t, c, h, w)


def check_frames_settings(cfg) -> None:
    """ConfigError for the settings image sequences cannot use (a RunConfig): per-image policies and CutMix would
    treat frames as channels, and FGSM / FixMatch know pixels and waves only."""
    from seehear.errors import ConfigError

    a = cfg.augment
    bad = [n for n, on in (("augment.policy", a.policy != "none"), ("augment.resized_crop", bool(a.resized_crop)),
                           ("augment.color_jitter", bool(a.color_jitter)), ("augment.grayscale", a.grayscale > 0),
                           ("augment.cutmix", a.cutmix > 0),
                           ("train.adversarial", cfg.train.adversarial != "none"),
                           ("data.unlabelled", bool(cfg.data.unlabelled))) if on]
    if bad:
        raise ConfigError(f"image sequences (modality frames) cannot use {', '.join(bad)} yet; leave "
                          f"{'it' if len(bad) == 1 else 'them'} off (flip, crop_pad, cutout and mixup work)")


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): blank one size x size square per image at a random centre (squares may run
    off the edge, so that edge pixels are hidden as often as the rest). The square takes the batch's per-channel
    mean, which the input normalisation maps to about zero. x: [B, C, H, W]; dtype is kept."""
    b, c, h, w = x.shape
    if b == 0 or size <= 0:
        return x
    cy = _randint(h, b, generator, x.device)[:, None]
    cx = _randint(w, b, generator, x.device)[:, None]
    top, left = cy - size // 2, cx - size // 2
    r, q = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows = (r >= top) & (r < top + size)  # [B, H]
    cols = (q >= left) & (q < left + size)  # [B, W]
    mask = (rows[:, :, None] & cols[:, None, :])[:, None]  # [B, 1, H, W]
    fill = x.float().mean(dim=(0, 2, 3)).round_() if not x.is_floating_point() else x.mean(dim=(0, 2, 3))
    return torch.where(mask, fill.to(x.dtype)[None, :, None, None], x)


# ---------------------------------------------------------------------------------------------------- waveforms


def _fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """Centre-crop or zero-pad [B, S'] to [B, n] (clips are centred on the sound by data/decode.py)."""
    s = x.shape[-1]
    if s > n:
        start = (s - n) // 2
        return x[:, start:start + n]
    if s < n:
        left = (n - s) // 2
        return F.pad(x, (left, n - s - left))
    return x


def speed_perturb(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Play each clip `factors[i]` times faster (tempo and pitch both scale, as in Ko et al. 2015, "Audio
    augmentation for speech recognition"), then centre-crop/pad back to the original length. Factors are
    expected to take few distinct values; each group is resampled in one call."""
    n = x.shape[-1]
    out = x.clone()
    for f in torch.unique(factors).tolist():
        num = int(round(f * 100))  # f as num/100: small integers keep the resampling kernel small
        if num == 100:
            continue
        idx = (factors == f).nonzero().flatten()
        # Resampling from num to 100 Hz shortens the clip by f: played at the old rate it is f times faster.
        out[idx] = _fit_length(resampler(num, x.dtype, x.device)(x[idx]), n)
    return out


_resamplers: dict = {}


def resampler(num: int, dtype, device) -> nn.Module:
    """torchaudio's Resample(num -> 100) with its sinc kernel computed once, not on every batch."""
    key = (num, dtype, str(device))
    if key not in _resamplers:
        import torchaudio.transforms as T

        _resamplers[key] = T.Resample(num, 100, dtype=dtype).to(device)
    return _resamplers[key]


def pink_noise(shape, generator=None, device=None, white: torch.Tensor | None = None) -> torch.Tensor:
    """1/f noise: white noise (drawn, or the given `white` [B, S]) shaped in the frequency domain, unit RMS per
    row."""
    if white is None:
        white = _randn(shape, generator, device)
    spec = torch.fft.rfft(white, dim=-1)
    k = torch.arange(spec.shape[-1], device=white.device, dtype=white.dtype)
    spec = spec / k.clamp_min(1.0).sqrt()
    spec[..., 0] = 0  # no DC offset
    pink = torch.fft.irfft(spec, n=white.shape[-1], dim=-1)
    return pink / pink.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-8)


def _windows(x: torch.Tensor, n: int, start: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Row i of the result is x[rows[i], start[i]:start[i] + n] (rows default 0..len-1): one indexed copy of a
    strided view, with no index tensor the size of the output (several times faster than a gather)."""
    if rows is None:
        rows = torch.arange(len(x), device=x.device)
    return x.unfold(-1, n, 1)[rows, start]


NOISE_BANK_SAMPLES = 1_000_000  # per colour: rows of one clip length, drawn once per (length, device); ~16 MB
_bank: tuple = (None, None)  # (key, bank): one clip length at a time, replaced whole (safe for the Prefetch thread)


def _noise_bank(s: int, device) -> torch.Tensor:
    """[2R, 2S-1] unit-RMS white (rows < R) and pink (rows >= R) noise, made once from a fixed seed and reused: a
    random row at a random offset with a random sign costs one copy, where fresh noise per batch cost a normal
    draw and two FFTs. R*S ~ NOISE_BANK_SAMPLES: about a million distinct windows per colour."""
    global _bank
    key, bank = _bank
    if key != (s, str(device)):
        g = torch.Generator().manual_seed(0)
        white = torch.randn(max(8, NOISE_BANK_SAMPLES // s), s, generator=g)
        both = torch.stack([white / white.pow(2).mean(-1, keepdim=True).sqrt(), pink_noise(None, white=white)])
        bank = torch.cat([both, both[..., :-1]], dim=-1).flatten(0, 1).to(device)  # circular: offsets [0, S)
        _bank = ((s, str(device)), bank)
    return bank


def augment_waves(x: torch.Tensor, cfg, sample_rate: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Speed perturbation (cfg.speed = [lo, hi], in SPEED_LEVELS discrete steps), time shift with zero fill (up to
    cfg.time_shift seconds either way), gain (+-cfg.gain_db), and white or pink noise at an SNR drawn from
    cfg.noise_snr_db with probability cfg.noise_prob (from the recordings in cfg.noise_dir when set). Pitch shift,
    reverberation, band limit and babble (features/audio_augment.py) come before the noise, when switched on.
    Setting any of them to None (or 0) switches it off.
    x: [B, S] float; returns float [B, S]."""
    owned = x.dtype == torch.int16  # whether x is our own copy (noise is then added in place)
    if owned:
        x = pcm_to_float(x)
    b, s = x.shape
    if b == 0:
        return x
    dev = x.device
    if cfg.speed:
        lo, hi = float(cfg.speed[0]), float(cfg.speed[-1])
        if not lo == hi == 1.0:
            levels = torch.linspace(lo, hi, SPEED_LEVELS, device=dev)
            x, owned = speed_perturb(x, levels[_randint(SPEED_LEVELS, b, generator, dev)]), True
    if cfg.time_shift:
        m = min(int(cfg.time_shift * sample_rate), s)
        if m > 0:
            shift = _randint(2 * m + 1, b, generator, dev) - m  # [B], positive = later
            x, owned = _windows(F.pad(x, (m, m)), s, m - shift), True  # zero fill where the clip moved away
    if cfg.gain_db:
        db = (_rand(b, generator, dev) * 2 - 1) * float(cfg.gain_db)
        x, owned = x * torch.pow(10.0, db / 20.0)[:, None], True
    if cfg.pitch_semitones or cfg.reverb_prob or cfg.bandlimit_prob or cfg.babble_prob:
        x, owned = more_waves(x, cfg, sample_rate, generator), True  # features/audio_augment.py
    if cfg.noise_snr_db and cfg.noise_prob > 0:
        lo, hi = float(cfg.noise_snr_db[0]), float(cfg.noise_snr_db[-1])
        snr = lo + (hi - lo) * _rand(b, generator, dev)
        use = _rand(b, generator, dev) < cfg.noise_prob
        pink = _rand(b, generator, dev) < 0.5
        rows = use.nonzero().flatten()  # noise only for the clips that get it
        if len(rows) and cfg.noise_dir:  # the user's recordings instead of generated noise
            x = (x if owned else x.clone())
            x[rows] = background_noise(x[rows], load_noise_dir(cfg.noise_dir, sample_rate), snr[rows], generator)
        elif len(rows):
            bank = _noise_bank(s, dev)
            k, per_colour = len(rows), bank.shape[0] // 2
            pick = _randint(per_colour, k, generator, dev) + per_colour * pink[rows].long()
            offset = _randint(s, k, generator, dev)
            sign = torch.where(_rand(k, generator, dev) < 0.5, -1.0, 1.0)
            noise = _windows(bank, s, offset, pick)  # a rotation of a unit-RMS row: unit RMS
            rms = torch.linalg.vector_norm(x, dim=-1)[rows] / s ** 0.5
            scale = rms * torch.pow(10.0, -snr[rows] / 20.0) * sign
            x = (x if owned else x.clone()).index_add_(0, rows, noise * scale[:, None])
    return x


# ---------------------------------------------------------------------------------------------------- spectrograms


def _band_masks(n_masks: int, max_width: int, size: int, b: int, generator, device) -> torch.Tensor:
    """[B, size] bool: n_masks random bands of width 0..max_width per row."""
    max_width = min(max_width, size)
    width = _randint(max_width + 1, (b, n_masks), generator, device)
    start = (_rand((b, n_masks), generator, device) * (size - width + 1)).long()
    pos = torch.arange(size, device=device)[None, None]
    return ((pos >= start[..., None]) & (pos < (start + width)[..., None])).any(dim=1)


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic
    Speech Recognition"), on [B, C, F, T], only in training mode. Masked cells get the clip's mean, which is 0
    after utterance normalisation. Set `.generator` for repeatable masks."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 6, time_masks: int = 2, time_width: int = 10):
        super().__init__()
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] == 0:
            return x
        b, _, f, t = x.shape
        mask = torch.zeros(b, f, t, dtype=torch.bool, device=x.device)
        if self.freq_masks > 0 and self.freq_width > 0:
            mask |= _band_masks(self.freq_masks, self.freq_width, f, b, self.generator, x.device)[:, :, None]
        if self.time_masks > 0 and self.time_width > 0:
            mask |= _band_masks(self.time_masks, self.time_width, t, b, self.generator, x.device)[:, None, :]
        fill = x.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(mask[:, None], fill, x)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, time_width={self.time_width}")


# ---------------------------------------------------------------------------------------------------- mixup


def mixup(x: torch.Tensor, y_onehot: torch.Tensor, alpha: float, generator: torch.Generator | None = None):
    """Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): one lambda ~ Beta(alpha, alpha) per
    batch, mixed with a random permutation of the batch; uint8 images come back uint8. Returns (x, y)."""
    if alpha <= 0 or x.shape[0] < 2:
        return x, y_onehot
    lam = float(numpy_rng(generator).beta(alpha, alpha))  # torch's Beta sampler takes no generator
    dtype = x.dtype
    perm = torch.randperm(x.shape[0], generator=generator,
                          device=generator.device if generator is not None else "cpu").to(x.device)
    mixed = lam * x.float() + (1 - lam) * x.float()[perm]
    # uint8 pixels stay uint8 pixels: the front end reads float images as 0..1, so 0..255 floats would be wrong
    mixed = mixed.round().clamp(0, 255).to(dtype) if dtype == torch.uint8 else mixed.to(dtype)
    y = y_onehot if y_onehot.is_floating_point() else y_onehot.float()
    return mixed, lam * y + (1 - lam) * y[perm]


def cutmix(x: torch.Tensor, y_onehot: torch.Tensor, alpha: float, generator: torch.Generator | None = None):
    """CutMix (Yun et al. 2019): one box per batch, of area share 1 - lambda with lambda ~ Beta(alpha, alpha), pasted
    from a random permutation of the batch; labels mixed by the share actually pasted. Returns (x, y)."""
    if alpha <= 0 or x.shape[0] < 2 or x.dim() != 4:
        return x, y_onehot
    b, _, h, w = x.shape
    lam = float(numpy_rng(generator).beta(alpha, alpha))
    ch, cw = int(round(h * math.sqrt(1 - lam))), int(round(w * math.sqrt(1 - lam)))
    cy, cx = int(_randint(h, 1, generator, "cpu")), int(_randint(w, 1, generator, "cpu"))
    top, bottom = max(0, cy - ch // 2), min(h, cy + (ch + 1) // 2)
    left, right = max(0, cx - cw // 2), min(w, cx + (cw + 1) // 2)
    perm = torch.randperm(b, generator=generator,
                          device=generator.device if generator is not None else "cpu").to(x.device)
    out = x.clone()
    out[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
    share = (bottom - top) * (right - left) / (h * w)
    y = y_onehot if y_onehot.is_floating_point() else y_onehot.float()
    return out, (1 - share) * y + share * y[perm]


__all__ = ["cutmix", "augment_images", "augment_waves", "speed_perturb", "pink_noise", "SpecAugment", "mixup"]

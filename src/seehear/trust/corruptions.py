"""A corruption suite made here, as batched tensor ops, in the spirit of CIFAR-10-C (Hendrycks & Dietterich 2019):
images get 10 corruptions at 5 severities, audio 7 at 4-5 severities (noise at SNR 20/10/5/0 dB).

Every function maps a batch to a batch of the same shape and dtype (uint8 images [B,C,H,W] 0..255; waves [B,S]
float -1..1 or int16) and is deterministic given `seed`. Severity 1 is mild, the last is strong.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from seehear.data.decode import float_to_pcm, pcm_to_float

SNR_DB = (20.0, 10.0, 5.0, 0.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# --- images: work in float 0..1, return uint8 --------------------------------------------------------------
def _img(fn):
    def wrapped(x: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
        if not 1 <= severity <= 5:
            raise ValueError(f"severity must be 1..5, got {severity}")
        f = x.float() / 255.0
        out = fn(f, severity - 1, _gen(seed)).clamp(0, 1)
        return (out * 255.0).round().to(x.dtype) if x.dtype == torch.uint8 else out * 255.0
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


@_img
def gaussian_noise(x, s, g):
    """Additive Gaussian noise, σ 0.04..0.10 of the range."""
    return x + torch.randn(x.shape, generator=g) * (0.04, 0.06, 0.08, 0.09, 0.10)[s]


@_img
def shot_noise(x, s, g):
    """Poisson (photon) noise: fewer photons at higher severity."""
    c = (500.0, 250.0, 100.0, 75.0, 50.0)[s]
    return torch.poisson(x * c, generator=g) / c


@_img
def impulse_noise(x, s, g):
    """Salt-and-pepper on a fraction 1%..7% of the values."""
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[s]
    u = torch.rand(x.shape, generator=g)
    return torch.where(u < amount / 2, torch.zeros_like(x), torch.where(u > 1 - amount / 2, torch.ones_like(x), x))


def _conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c, k = x.shape[1], kernel.shape[-1]
    w = (kernel / kernel.sum()).expand(c, 1, k, k)
    return F.conv2d(F.pad(x, (k // 2,) * 4, mode="replicate"), w, groups=c)


@_img
def defocus_blur(x, s, g):
    """Disk kernel, radius 0.75..3 px at 32 px (scaled with the image), edges anti-aliased so that sub-pixel
    radii still blur."""
    r = (0.75, 1.25, 1.75, 2.25, 3.0)[s] * max(1.0, x.shape[-1] / 32)
    k = 2 * math.ceil(r) + 1
    yy, xx = torch.meshgrid(torch.arange(k) - k // 2, torch.arange(k) - k // 2, indexing="ij")
    disk = (r + 0.5 - (xx ** 2 + yy ** 2).float().sqrt()).clamp(0, 1)
    return _conv_same(x, disk)


@_img
def motion_blur(x, s, g):
    """A straight streak of 3..11 px (at 32 px) at a random angle."""
    length = (3, 5, 7, 9, 11)[s] * max(1.0, x.shape[-1] / 32)
    k = 2 * int(length // 2) + 1
    ang = float(torch.rand((), generator=g)) * math.pi
    t = torch.linspace(-(k // 2), k // 2, 4 * k)
    ker = torch.zeros(k, k)
    ix = (t * math.cos(ang)).round().long() + k // 2
    iy = (t * math.sin(ang)).round().long() + k // 2
    ker[iy.clamp(0, k - 1), ix.clamp(0, k - 1)] = 1.0
    return _conv_same(x, ker)


def jpeg(x: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
    """JPEG compression (Pillow) at quality 80..20."""
    from PIL import Image

    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    q = (80, 60, 45, 30, 20)[severity - 1]
    u8 = x.round().clamp(0, 255).to(torch.uint8) if x.dtype != torch.uint8 else x
    out = torch.empty_like(u8)
    for i, im in enumerate(u8.permute(0, 2, 3, 1).numpy()):
        pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q)
        a = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out[i] = torch.from_numpy(a.reshape(im.shape).copy()).permute(2, 0, 1)
    return out if x.dtype == torch.uint8 else out.to(x.dtype)


@_img
def pixelate(x, s, g):
    """Down-sample by area to 60%..25% of the side, back up by nearest neighbour."""
    h, w = x.shape[-2:]
    f = (0.6, 0.5, 0.4, 0.3, 0.25)[s]
    small = F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


@_img
def brightness(x, s, g):
    """Everything lighter by 0.1..0.5 of the range."""
    return x + (0.1, 0.2, 0.3, 0.4, 0.5)[s]


@_img
def contrast(x, s, g):
    """Pulled towards each image's mean, keeping 60%..15% of the contrast."""
    c = (0.6, 0.45, 0.35, 0.25, 0.15)[s]
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * c + m


@_img
def haze(x, s, g):
    """Fog-like: a smooth random grey field blended in at 20%..60%."""
    b, _, h, w = x.shape
    field = torch.zeros(b, 1, h, w)
    for octave in (2, 4, 8):  # a few octaves of bilinear-upsampled noise: cloud-like, not blocky
        field += F.interpolate(torch.rand(b, 1, octave, octave, generator=g), size=(h, w), mode="bilinear",
                               align_corners=False) / octave
    field = 0.6 + 0.4 * (field - field.amin((2, 3), True)) / (field.amax((2, 3), True) - field.amin((2, 3), True)
                                                            + 1e-6)
    a = (0.2, 0.3, 0.4, 0.5, 0.6)[s]
    return x * (1 - a) + field * a


IMAGE_CORRUPTIONS = {f.__name__: f for f in (gaussian_noise, shot_noise, impulse_noise, defocus_blur, motion_blur,
                                             jpeg, pixelate, brightness, contrast, haze)}


# --- audio: work in float -1..1, return the input's dtype --------------------------------------------------
def _wave(fn, levels: int = 5):
    def wrapped(x: torch.Tensor, severity: int, seed: int = 0, sample_rate: int = 16000) -> torch.Tensor:
        if not 1 <= severity <= levels:
            raise ValueError(f"severity must be 1..{levels}, got {severity}")
        f = pcm_to_float(x)
        out = fn(f, severity - 1, _gen(seed), sample_rate).clamp(-1, 1)
        return float_to_pcm(out) if x.dtype == torch.int16 else out.to(x.dtype)
    wrapped.__name__, wrapped.__doc__, wrapped.levels = fn.__name__, fn.__doc__, levels
    return wrapped


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-8)


def add_at_snr(x: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """x + noise scaled per clip so that 10 log10(P_x / P_noise) = snr_db."""
    return x + noise * (_rms(x) / _rms(noise) * 10 ** (-snr_db / 20))


def pink(shape, g: torch.Generator) -> torch.Tensor:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    n = shape[-1]
    spec = torch.fft.rfft(torch.randn(shape, generator=g), dim=-1)
    f = torch.arange(spec.shape[-1], dtype=torch.float32).clamp(min=1.0)
    return torch.fft.irfft(spec / f.sqrt(), n=n, dim=-1)


def white_noise(x, s, g, sr):
    """White Gaussian noise at SNR 20/10/5/0 dB."""
    return add_at_snr(x, torch.randn(x.shape, generator=g), SNR_DB[s])


def pink_noise(x, s, g, sr):
    """Pink (1/f) noise at SNR 20/10/5/0 dB."""
    return add_at_snr(x, pink(x.shape, g), SNR_DB[s])


def babble_noise(x, s, g, sr):
    """Five other clips of the batch (time-shifted) mixed in at SNR 20/10/5/0 dB: a crowd of like sounds."""
    b, n = x.shape
    mix = torch.zeros_like(x)
    for k in range(1, 6):
        shift = int(torch.randint(0, n, (), generator=g))
        mix += torch.roll(x.roll(k, dims=0), shift, dims=-1)
    return add_at_snr(x, mix + 1e-4 * torch.randn(x.shape, generator=g), SNR_DB[s])


def reverberation(x, s, g, sr):
    """Convolution with a generated room response: exponentially decaying noise, RT60 0.2..1.0 s."""
    rt60 = (0.2, 0.4, 0.6, 0.8, 1.0)[s]
    m = int(rt60 * sr)
    t = torch.arange(m, dtype=torch.float32) / sr
    rir = torch.randn(m, generator=g) * torch.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    rir[0] = 1.0  # the direct path
    n = x.shape[-1]
    size = 1 << (n + m - 1).bit_length()
    y = torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(rir, size), size)[..., :n]
    return y * (_rms(x) / _rms(y))  # same loudness: what changes is the smearing, not the level


def clipping(x, s, g, sr):
    """Hard clipping at 50%..5% of each clip's peak."""
    c = (0.5, 0.3, 0.2, 0.1, 0.05)[s] * x.abs().amax(-1, keepdim=True)
    return torch.max(torch.min(x, c), -c)


def band_limit(x, s, g, sr):
    """Telephone-like band: low-pass at 4000..500 Hz and high-pass at 100..400 Hz (ideal FFT masks)."""
    lo, hi = (100, 200, 300, 300, 400)[s], (4000, 3000, 2000, 1000, 500)[s]
    hi = min(hi, sr / 2)
    spec = torch.fft.rfft(x, dim=-1)
    f = torch.fft.rfftfreq(x.shape[-1], 1 / sr)
    return torch.fft.irfft(spec * ((f >= lo) & (f <= hi)), n=x.shape[-1], dim=-1)


def speed(x, s, g, sr):
    """Played 6%..30% faster (tempo and pitch, by resampling), cropped or padded back to length."""
    factor = (1.06, 1.12, 1.18, 1.24, 1.30)[s]
    n = x.shape[-1]
    m = max(2, round(n / factor))
    y = F.interpolate(x[:, None], size=m, mode="linear", align_corners=True)[:, 0]
    return F.pad(y, (0, n - m))


AUDIO_CORRUPTIONS = {"white_noise": _wave(white_noise, 4), "pink_noise": _wave(pink_noise, 4),
                     "babble_noise": _wave(babble_noise, 4), "reverberation": _wave(reverberation),
                     "clipping": _wave(clipping), "band_limit": _wave(band_limit), "speed": _wave(speed)}


def corruptions_for(modality: str) -> dict:
    return IMAGE_CORRUPTIONS if modality == "image" else AUDIO_CORRUPTIONS


def levels(modality: str, name: str) -> int:
    return getattr(corruptions_for(modality)[name], "levels", 5)


def corrupt(x: torch.Tensor, modality: str, name: str, severity: int, seed: int = 0,
            sample_rate: int = 16000) -> torch.Tensor:
    fn = corruptions_for(modality)[name]
    return fn(x, severity, seed) if modality == "image" else fn(x, severity, seed, sample_rate)

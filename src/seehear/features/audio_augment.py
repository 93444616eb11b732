"""More waveform augmentation on whole batches: background noise from the user's recordings, babble, reverberation
with generated room impulse responses, pitch shift with the tempo kept, and band-limiting. Called by
features/augment.augment_waves; every draw comes from its generator, like the rest.

Each effect takes the rows that drew it (a probability per clip) and runs once on them: FFT convolution for the
reverberation and the band limit, a phase vocoder plus one resampling per pitch level for the pitch shift.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from seehear.errors import ConfigError
from seehear.features.rng import rand, randint, randn, uniform

PITCH_LEVELS = 5  # pitch shifts take this many values, so that each batch needs a few resamplings only
MAX_RIR_SECONDS = 1.0
BABBLE_TALKERS = 4


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt()


def mix_at_snr(x: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """x + noise scaled so that each row's signal-to-noise ratio is snr_db[i] (silent clips get no noise)."""
    scale = rms(x) / rms(noise).clamp_min(1e-8) * torch.pow(10.0, -snr_db / 20.0)[:, None]
    return x + scale * noise


# ---------------------------------------------------------------------------------------------------- noise files

_noise_files: dict = {}  # (folder, sample rate) -> one long float tensor: decoded once per process


def load_noise_dir(folder: str, sample_rate: int) -> torch.Tensor:
    """Every recording in `folder` decoded once (mono, resampled), each scaled to unit RMS, end to end. Unreadable
    files are skipped; a folder with no usable audio is a ConfigError."""
    key = (str(Path(folder).resolve()), int(sample_rate))
    if key in _noise_files:
        return _noise_files[key]
    from seehear.data.decode import decode_audio
    from seehear.data.sources import list_files
    from seehear.errors import SeehearError

    if not Path(folder).is_dir():
        raise ConfigError(f"augment.noise_dir {folder} is not a folder; give a folder of noise recordings")
    try:
        records = list_files([folder]).records
    except SeehearError as e:
        raise ConfigError(f"augment.noise_dir {folder}: {e}") from None
    parts = []
    for r in records:
        try:
            w = decode_audio(r, sample_rate=sample_rate, num_samples=None, crop="center")
        except SeehearError:
            continue  # a corrupt or non-audio file: the rest still make noise
        if len(w) and float(rms(w[None])) > 1e-6:
            parts.append(w / rms(w[None])[0])
    if not parts:
        raise ConfigError(f"augment.noise_dir {folder} holds no readable, non-silent audio files")
    _noise_files[key] = torch.cat(parts).float()
    return _noise_files[key]


def background_noise(x: torch.Tensor, bank: torch.Tensor, snr_db: torch.Tensor, generator=None) -> torch.Tensor:
    """Mix each row with a random window of the noise recordings at its SNR."""
    b, s = x.shape
    if len(bank) < 2 * s:  # short recordings are looped
        bank = bank.repeat(math.ceil(2 * s / len(bank)))
    start = randint(len(bank) - s + 1, b, generator, "cpu")
    noise = bank.unfold(0, s, 1)[start].to(x.device)
    return mix_at_snr(x, noise, snr_db)


def babble(x: torch.Tensor, snr_db: torch.Tensor, generator=None, talkers: int = BABBLE_TALKERS) -> torch.Tensor:
    """Babble: each row mixed with the sum of `talkers` other clips of the batch (never itself), each at unit RMS
    and circularly shifted, at its SNR."""
    b, s = x.shape
    n = min(talkers, b - 1)
    if n < 1:
        return x
    perm = torch.randperm(b, generator=generator, device=generator.device if generator is not None else "cpu")
    perm = perm.to(x.device)
    xp = x[perm] / rms(x[perm]).clamp_min(1e-8)
    crowd = torch.zeros_like(x)
    for k in range(1, n + 1):  # row j of the permuted batch hears rows j-1 .. j-n: others, as perm is one-to-one
        shift = int(randint(s, 1, generator, "cpu"))
        crowd += torch.roll(xp, shifts=(k, shift), dims=(0, 1))
    out = torch.empty_like(x)
    out[perm] = crowd
    return mix_at_snr(x, out, snr_db)


# ---------------------------------------------------------------------------------------------------- filters


def _fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal convolution of each row of x with its row of h, cut to x's length."""
    s = x.shape[-1]
    n = 1 << (s + h.shape[-1] - 1).bit_length()
    return torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(h, n), n)[..., :s]


def room_impulse_responses(rt60: torch.Tensor, sample_rate: int, generator=None) -> torch.Tensor:
    """[B, L] generated RIRs: a direct path, then Gaussian noise decaying by 60 dB in rt60[i] seconds (the
    statistical model of late reverberation, Polack 1988), unit energy."""
    length = int(min(MAX_RIR_SECONDS, float(rt60.max())) * sample_rate)
    t = torch.arange(max(1, length), device=rt60.device) / sample_rate
    h = randn((len(rt60), len(t)), generator, rt60.device) * torch.exp(-6.908 * t / rt60[:, None])
    h[:, 0] = 1.0
    return h / h.norm(dim=-1, keepdim=True)


def reverberate(x: torch.Tensor, rt60: torch.Tensor, sample_rate: int, generator=None) -> torch.Tensor:
    """Each row convolved with a generated RIR of its rt60, kept at its own RMS."""
    wet = _fft_convolve(x, room_impulse_responses(rt60.to(x.device), sample_rate, generator))
    return wet * (rms(x) / rms(wet).clamp_min(1e-8))


def bandlimit(x: torch.Tensor, cutoff_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Low-pass each row at its cutoff (a raised-cosine roll-off over the last 20% below it), as a phone line or
    a cheap microphone would."""
    s = x.shape[-1]
    spec = torch.fft.rfft(x)
    f = torch.fft.rfftfreq(s, 1 / sample_rate).to(x.device)[None]
    c = cutoff_hz.to(x.device)[:, None]
    edge = 0.2 * c
    ramp = 0.5 * (1 + torch.cos(math.pi * ((f - (c - edge)) / edge).clamp(0, 1)))
    return torch.fft.irfft(spec * ramp, s)


def pitch_shift(x: torch.Tensor, semitones: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Shift each row's pitch by semitones[i], tempo kept: stretch by a phase vocoder to f times the length, then
    play f times faster (f = 2^(semitones/12) as num/100, so one small resampling kernel per level). torchaudio's
    pitch_shift resamples by the exact irrational ratio, which took ~1 s per clip."""
    import torchaudio.functional as AF

    from seehear.features.augment import resampler

    s = x.shape[-1]
    out = x.clone()
    n_fft, hop = 512, 128
    window = torch.hann_window(n_fft, device=x.device)
    for st in torch.unique(semitones).tolist():
        num = int(round(100 * 2 ** (st / 12)))
        if num == 100:
            continue
        rows = (semitones == st).nonzero().flatten()
        spec = torch.stft(x[rows], n_fft, hop, window=window, return_complex=True)
        advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=x.device)[:, None]
        longer = torch.istft(AF.phase_vocoder(spec, 100 / num, advance), n_fft, hop, window=window,
                             length=int(round(s * num / 100)))
        y = resampler(num, x.dtype, x.device)(longer)  # num -> 100 Hz: f times faster, f times higher
        out[rows] = F.pad(y, (0, max(0, s - y.shape[-1])))[:, :s]
    return out


# ---------------------------------------------------------------------------------------------------- together


def _rows(p: float, b: int, generator, device) -> torch.Tensor:
    return (rand(b, generator, device) < p).nonzero().flatten() if p > 0 else torch.zeros(0, dtype=torch.long)


def more_waves(x: torch.Tensor, cfg, sample_rate: int, generator=None) -> torch.Tensor:
    """Pitch shift, reverberation, band limit and babble, each on the share of clips its probability says.
    x: [B, S] float (not changed in place); returns [B, S]."""
    b, dev = x.shape[0], x.device
    steps = [("pitch", cfg.pitch_prob if cfg.pitch_semitones else 0.0), ("reverb", cfg.reverb_prob),
             ("band", cfg.bandlimit_prob), ("babble", cfg.babble_prob)]
    for name, p in steps:
        rows = _rows(p, b, generator, dev)
        if len(rows) == 0:
            continue
        k = len(rows)
        x = x.clone()
        if name == "pitch":
            levels = torch.linspace(-cfg.pitch_semitones, cfg.pitch_semitones, PITCH_LEVELS)
            x[rows] = pitch_shift(x[rows], levels[randint(PITCH_LEVELS, k, generator, "cpu")].to(dev), sample_rate)
        elif name == "reverb":
            rt = uniform(float(cfg.reverb_rt60[0]), float(cfg.reverb_rt60[-1]), k, generator, dev).clamp_min(0.01)
            x[rows] = reverberate(x[rows], rt, sample_rate, generator)
        elif name == "band":
            lo, hi = float(cfg.bandlimit_hz[0]), min(float(cfg.bandlimit_hz[-1]), sample_rate / 2)
            x[rows] = bandlimit(x[rows], uniform(lo, hi, k, generator, dev), sample_rate)
        else:
            snr = uniform(float(cfg.babble_snr_db[0]), float(cfg.babble_snr_db[-1]), b, generator, dev)
            mixed = babble(x, snr, generator)  # the crowd comes from the whole batch
            x[rows] = mixed[rows]
    return x


__all__ = ["mix_at_snr", "load_noise_dir", "background_noise", "babble", "room_impulse_responses", "reverberate",
           "bandlimit", "pitch_shift", "more_waves"]

"""Background noise from files, babble, reverberation, pitch shift and band-limiting: each changes its input,
keeps the shape, and does what it says (SNR as asked, frequencies where they should be)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from seehear.config import AugmentConfig
from seehear.errors import ConfigError
from seehear.features import augment_waves
from seehear.features.audio_augment import (babble, background_noise, bandlimit, load_noise_dir, mix_at_snr,
                                            pitch_shift, reverberate, room_impulse_responses)

SR = 16000
OFF = dict(time_shift=None, noise_snr_db=None, speed=None, gain_db=0.0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tones(freqs, seconds=0.5):
    t = torch.arange(int(SR * seconds)) / SR
    return torch.stack([torch.sin(2 * math.pi * f * t) for f in freqs])


def snr_db(clean, noisy):
    return 10 * torch.log10(clean.pow(2).mean(-1) / (noisy - clean).pow(2).mean(-1))


def peak_hz(x):
    spec = torch.fft.rfft(x * torch.hann_window(x.shape[-1]), dim=-1).abs()
    return spec.argmax(-1).float() * SR / x.shape[-1]


def test_mix_at_snr_hits_the_asked_ratio():
    x, noise = tones([300, 500, 700]), torch.randn(3, SR // 2, generator=gen())
    snr = torch.tensor([0.0, 10.0, 25.0])
    assert torch.allclose(snr_db(x, mix_at_snr(x, noise, snr)), snr, atol=0.01)


def test_background_noise_from_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "fan.wav", rng.normal(0, 0.1, 8000).astype("float32"), 8000)  # resampled to 16 kHz
    sf.write(tmp_path / "street.flac", rng.normal(0, 0.3, 3000).astype("float32"), SR)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    bank = load_noise_dir(str(tmp_path), SR)
    assert len(bank) == 16000 + 3000  # both files, the corrupt one skipped
    assert load_noise_dir(str(tmp_path), SR) is bank  # decoded once
    x = tones([440] * 6)
    snr = torch.tensor([0.0, 5.0, 10.0, 15.0, 20.0, 30.0])
    y = background_noise(x, bank, snr, gen())
    assert y.shape == x.shape and not torch.equal(x, y)
    assert torch.allclose(snr_db(x, y), snr, atol=0.01)
    cfg = AugmentConfig(**{**OFF, "noise_snr_db": [10.0, 10.0], "noise_prob": 1.0}, noise_dir=str(tmp_path))
    z = augment_waves(x, cfg, SR, gen())
    assert torch.allclose(snr_db(x, z), torch.full((6,), 10.0), atol=0.01)


def test_noise_dir_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        load_noise_dir(str(tmp_path / "missing"), SR)
    (tmp_path / "bad.wav").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="no readable") as e:
        load_noise_dir(str(tmp_path), SR)
    assert "\n" not in str(e.value)


def test_babble_is_other_clips_at_the_asked_snr():
    freqs = [250 + 50 * i for i in range(8)]  # whole cycles in 0.5 s: each tone is one FFT bin
    x = tones(freqs)
    snr = torch.full((8,), 5.0)
    y = babble(x, snr, gen())
    assert y.shape == x.shape
    assert torch.allclose(snr_db(x, y), snr, atol=0.05)
    crowd = torch.fft.rfft(y - x, dim=-1).abs()
    bins = [int(f * 0.5) for f in freqs]
    for i, k in enumerate(bins):
        assert crowd[i, k] < 1e-3 * crowd[i].max()  # its own voice is not in its crowd
        assert sum(crowd[i, j] > 0.1 * crowd[i].max() for j in bins) == 4  # four other talkers


def test_reverb_spreads_an_impulse_and_longer_rooms_ring_longer():
    x = torch.zeros(2, SR)
    x[:, 100] = 1.0
    y = reverberate(x, torch.tensor([0.2, 0.8]), SR, gen())
    assert y.shape == x.shape and torch.allclose(y.pow(2).mean(-1), x.pow(2).mean(-1), rtol=1e-4)
    late = y[:, 100 + int(0.15 * SR):].pow(2).sum(-1) / y.pow(2).sum(-1)  # energy after 150 ms
    assert late[1] > 3 * late[0] > 0
    h = room_impulse_responses(torch.tensor([0.5]), SR, gen())
    env = h[0, 1:].pow(2).unfold(0, 800, 800).mean(-1)  # 50 ms windows
    db_per_s = 10 * torch.log10(env[1] / env[5]) / 0.2  # decay between 75 and 275 ms
    assert 60 / 0.5 * 0.7 < db_per_s < 60 / 0.5 * 1.3  # 60 dB in rt60


def test_bandlimit_removes_what_is_above_the_cutoff():
    x = tones([500]) + tones([5000])
    y = bandlimit(x.repeat(2, 1), torch.tensor([2000.0, 7000.0]), SR)
    spec = torch.fft.rfft(y, dim=-1).abs()
    assert spec[0, 2500] < 1e-3 * spec[0, 250] and spec[0, 250] > 0.99 * torch.fft.rfft(x).abs()[0, 250]
    assert spec[1, 2500] > 0.99 * spec[1, 250]  # a cutoff above both keeps both


def test_pitch_shift_moves_frequency_and_keeps_timing():
    x = tones([440, 440, 440], seconds=1.0)
    x[:, SR // 2:] = 0  # a half-second burst: its timing must stay
    y = pitch_shift(x, torch.tensor([12.0, -12.0, 0.0]), SR)
    assert y.shape == x.shape
    got = peak_hz(y[:, :SR // 2])
    assert abs(got[0] - 880) < 15 and abs(got[1] - 220) < 15 and torch.equal(y[2], x[2])
    tail = y[:2, SR // 2 + 1600:].pow(2).mean(-1) / y[:2, :SR // 2].pow(2).mean(-1)
    assert (tail < 0.01).all()  # tempo kept: the burst still ends at 0.5 s (a speed change would not)


def test_all_audio_options_together_keep_shape_and_repeat():
    x = tones([300 + 20 * i for i in range(16)]) * 0.5
    cfg = AugmentConfig(**OFF, pitch_semitones=2.0, pitch_prob=1.0, reverb_prob=1.0, bandlimit_prob=1.0,
                        babble_prob=1.0)
    y = augment_waves(x, cfg, SR, gen())
    assert y.shape == x.shape and y.dtype == torch.float32 and (y - x).abs().amax(-1).min() > 0.01
    assert torch.equal(y, augment_waves(x, cfg, SR, gen()))
    assert torch.equal(augment_waves(x, AugmentConfig(**OFF), SR, gen()), x)  # all off by default

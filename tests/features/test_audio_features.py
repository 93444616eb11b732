"""Log-mel / MFCC front ends against torchaudio, shapes, dtypes and normalisation."""
from __future__ import annotations

import pytest
import torch
import torchaudio

from seehear.config import AudioConfig
from seehear.errors import ConfigError
from seehear.features import MFCC, LogMel, build_audio_frontend, num_frames, num_samples

SR = 16000
PARAMS = dict(n_fft=512, win_length=400, hop_length=160, f_min=20.0)


def _signal(n=SR, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    tone = 0.5 * torch.sin(2 * torch.pi * 440 * t) * torch.linspace(0, 1, n) + 0.3 * torch.sin(2 * torch.pi * 2500 * t)
    return torch.stack([tone + 0.05 * torch.randn(n, generator=g), 0.2 * torch.randn(n, generator=g)])


def test_logmel_matches_torchaudio():
    x = _signal()
    ours = LogMel(SR, n_mels=40, normalize="none", **PARAMS)(x)[:, 0]
    ref = torchaudio.transforms.MelSpectrogram(SR, n_mels=40, power=2.0, mel_scale="htk", **PARAMS)(x)
    assert ours.shape == ref.shape == (2, 40, 101)
    assert (ours - torch.log(ref + 1e-6)).abs().max() < 1e-3


def test_mfcc_matches_torchaudio():
    x = _signal()
    ours = MFCC(SR, n_mels=40, n_mfcc=13, normalize="none", **PARAMS)(x)
    ref = torchaudio.transforms.MFCC(SR, n_mfcc=13, log_mels=True,
                                     melkwargs=dict(n_mels=40, power=2.0, mel_scale="htk", **PARAMS))(x)
    assert ours.shape == (2, 1, 13, 101)
    assert (ours[:, 0] - ref).abs().max() < 1e-2  # DCT sums 40 log bands: 1e-3 per band, a little more here


@pytest.mark.parametrize("n", [16000, 12345, 8000, 400, 100])
def test_frame_count(n):
    assert LogMel()(torch.randn(1, n)).shape == (1, 1, 40, 1 + n // 160)


def test_num_frames_matches_frontend():
    cfg = AudioConfig(clip_seconds=0.75)
    assert num_samples(cfg) == 12000 and num_frames(cfg) == 76
    assert build_audio_frontend(cfg)(torch.randn(2, num_samples(cfg))).shape == (2, 1, cfg.n_mels, num_frames(cfg))
    assert num_frames(AudioConfig()) == 101


def test_int16_input_equals_scaled_float():
    x = (_signal() * 0.5 * 32767).round().to(torch.int16)
    m = LogMel(normalize="none")
    assert torch.allclose(m(x), m(x.float() / 32767), atol=1e-5)


def test_utterance_normalisation():
    y = LogMel(normalize="utterance")(_signal())
    assert y.dtype == torch.float32
    assert y.mean(dim=-1).abs().max() < 1e-4
    assert (y.std(dim=-1, unbiased=False) - 1).abs().max() < 1e-2


def test_global_normalisation_keeps_band_levels():
    x = _signal()
    raw = LogMel(normalize="none")(x)
    y = LogMel(normalize="global")(x)
    assert y.shape == raw.shape and y.dtype == torch.float32
    assert y.mean(dim=(1, 2, 3)).abs().max() < 1e-4  # per clip, over all bands and frames
    assert (y.std(dim=(1, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
    # one affine map per clip: the differences between bands (spectral tilt) survive, unlike 'utterance'
    scale = raw[0].std(unbiased=False)
    assert torch.allclose(y[0] * scale, raw[0] - raw[0].mean(), atol=1e-3)
    assert LogMel(normalize="utterance")(x).mean(dim=-1).abs().max() < 1e-4
    assert y.mean(dim=-1).abs().max() > 0.1
    # loudness is a log offset: 'global' removes it
    assert torch.allclose(LogMel(normalize="global")(4 * x), y, atol=1e-3)
    assert MFCC(normalize="global", n_mfcc=13)(x).shape == (2, 1, 13, 101)


def test_bf16_autocast_stays_float32():
    x = _signal()
    m = LogMel()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, m(x), atol=1e-5)


def test_build_frontend_and_errors():
    assert isinstance(build_audio_frontend(AudioConfig(features="mfcc", n_mfcc=20)), MFCC)
    assert build_audio_frontend(AudioConfig(features="mfcc", n_mfcc=20))(torch.randn(1, 1600)).shape == (1, 1, 20, 11)
    with pytest.raises(ConfigError):
        build_audio_frontend(AudioConfig(features="wavelets"))
    with pytest.raises(ConfigError):
        LogMel(normalize="per-speaker")
    with pytest.raises(ConfigError):
        MFCC(n_mels=20, n_mfcc=40)
    assert "basis" not in LogMel().state_dict()  # derived buffers stay out of checkpoints

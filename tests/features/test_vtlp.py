"""Vocal-tract-length perturbation: the warp keeps the band edges, alpha = 1 is the front end's own filterbank,
formants move the way alpha says, draws repeat under a seed, and it acts in training mode only."""
from __future__ import annotations

import math

import pytest
import torch
import torchaudio.functional as AF

from seehear.config import RunConfig
from seehear.errors import ConfigError
from seehear.features import MFCC, LogMel
from seehear.features.vtlp import VTLP, check_range, warp_frequencies, warped_fbanks
from seehear.models.recognizer import build_recognizer

SR = 16000


def voice(seconds=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(SR * seconds)) / SR
    return torch.stack([torch.sin(2 * math.pi * 1000 * t), 0.3 * torch.randn(len(t), generator=g)])


def test_alpha_one_is_torchaudios_filterbank():
    for f_min, f_max, n_mels in [(20.0, 4000.0, 40), (0.0, 8000.0, 80)]:
        ref = AF.melscale_fbanks(257, f_min, f_max, n_mels, SR, norm=None, mel_scale="htk")
        got = warped_fbanks(torch.ones(3), 257, f_min, f_max, n_mels, SR)
        assert got.shape == (3, 257, n_mels)
        assert (got - ref).abs().max() < 1e-5


def test_warp_keeps_band_edges_and_is_monotone():
    f = torch.linspace(20.0, 4000.0, 500)
    a = torch.tensor([0.8, 0.9, 1.0, 1.1, 1.2])
    w = warp_frequencies(f, a, 20.0, 4000.0)
    assert torch.allclose(w[:, 0], torch.full((5,), 20.0, dtype=w.dtype))
    assert torch.allclose(w[:, -1], torch.full((5,), 4000.0, dtype=w.dtype))
    assert (w.diff(dim=1) > 0).all()
    assert torch.allclose(w[2], f.double())
    low = f < 1500  # below the bend: slope alpha from f_min
    assert torch.allclose(w[:, low] - 20.0, a.double()[:, None] * (f[low].double() - 20.0))


def test_warp_moves_a_tone_across_mel_bands():
    """alpha > 1 moves each filter up, so a 1 kHz tone peaks in a lower band; alpha < 1 the other way."""
    fe = LogMel(SR, n_mels=40, f_max=4000.0, normalize="none")
    x = voice()[:1].expand(3, -1)
    peak = fe(x, warp=torch.tensor([1.0, 1.15, 0.85]))[:, 0].mean(-1).argmax(-1)
    assert peak[1] < peak[0] < peak[2]


@pytest.mark.parametrize("cls", [LogMel, MFCC])
def test_warp_changes_features_keeps_shape_and_cmvn_follows(cls):
    fe = cls(SR, f_max=4000.0, normalize="utterance")
    x = voice()
    plain = fe(x)
    same = fe(x, warp=torch.ones(2))
    warped = fe(x, warp=torch.tensor([0.9, 1.1]))
    assert warped.shape == plain.shape and warped.dtype == torch.float32
    assert (same - plain).abs().max() < 1e-3
    assert ((warped - plain).abs().amax(dim=(1, 2, 3)) > 0.1).all()
    # utterance CMVN comes after the warp: still zero mean and unit variance per band
    assert warped.mean(-1).abs().max() < 1e-4
    assert (warped.std(-1, unbiased=False) - 1).abs().max() < 1e-2


def _model(vtlp=(0.9, 1.1)):
    cfg = RunConfig.from_dict({"audio": {"features": "mfcc", "n_mfcc": 13, "f_max": 4000.0},
                               "augment": {"vtlp": list(vtlp) if vtlp else None, "freq_masks": 0,
                                           "time_masks": 0},
                               "model": {"name": "tcresnet8"}})
    return build_recognizer(cfg, ["a", "b"], "audio")


def test_recognizer_warps_in_training_only_and_repeats_under_a_seed():
    model = _model()
    assert isinstance(model.vtlp, VTLP) and (model.vtlp.lo, model.vtlp.hi) == (0.9, 1.1)
    x = voice(seed=1)
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        a = model.features(x)
        torch.manual_seed(0)
        b = model.features(x)
        torch.manual_seed(1)
        c = model.features(x)
        model.vtlp.generator = torch.Generator().manual_seed(5)
        d = model.features(x)
        model.vtlp.generator = torch.Generator().manual_seed(5)
        e = model.features(x)
        model.eval()
        off = model.features(x)
    plain = model.frontend(x)
    assert torch.equal(a, b) and torch.equal(d, e)
    assert not torch.allclose(a, c, atol=1e-2)
    assert not torch.allclose(a, plain, atol=1e-2)
    assert torch.equal(off, plain)  # eval: no warp at all
    assert _model(None).vtlp is None
    assert not any(True for _ in model.vtlp.parameters()) and not dict(model.vtlp.state_dict())


def test_bad_ranges_are_one_line_config_errors():
    assert check_range([0.9, 1.1]) == (0.9, 1.1) and check_range([1.05]) == (1.05, 1.05)
    for bad in ([1.1, 0.9], [0.2, 1.0], "x", []):
        with pytest.raises(ConfigError, match="augment.vtlp"):
            check_range(bad)
    with pytest.raises(ConfigError, match="augment.vtlp"):
        _model((1.3, 0.8))
    assert RunConfig().override(["augment.vtlp=[0.9, 1.1]"]).augment.vtlp == [0.9, 1.1]
    assert RunConfig().augment.vtlp is None

"""Batch augmentation: shapes, dtypes, that each transform does what it says, and determinism."""
from __future__ import annotations

import math

import pytest
import torch

from seehear.config import AugmentConfig
from seehear.features import SpecAugment, augment_images, augment_waves, mixup

SR = 16000
OFF = dict(time_shift=None, noise_snr_db=None, speed=None, gain_db=0.0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_images_keep_shape_and_dtype(dtype):
    x = torch.randint(0, 256, (8, 3, 16, 16)).to(dtype)
    y = augment_images(x, AugmentConfig(flip=True, crop_pad=3), gen())
    assert y.shape == x.shape and y.dtype == dtype


def test_flip_flips():
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    y = augment_images(x, AugmentConfig(flip=True, crop_pad=0), gen())
    same = (y == x).flatten(1).all(1)
    flipped = (y == x.flip(-1)).flatten(1).all(1)
    assert (same | flipped).all()
    assert 10 < int(flipped.sum()) < 54


def test_translate_moves_content():
    x = torch.zeros(64, 1, 15, 15)
    x[:, :, 7, 7] = 1.0
    y = augment_images(x, AugmentConfig(flip=False, crop_pad=2), gen())
    pos = y.flatten(1).argmax(1)
    rows, cols = pos // 15, pos % 15
    assert ((rows - 7).abs() <= 2).all() and ((cols - 7).abs() <= 2).all()
    assert (rows != 7).any() and (cols != 7).any()
    assert torch.allclose(y.sum(dim=(1, 2, 3)), torch.ones(64))  # the pixel moved, nothing else appeared


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cutout_blanks_one_square_per_image(dtype):
    x = torch.randint(1, 256, (256, 3, 16, 16)).to(dtype)
    y = augment_images(x, AugmentConfig(flip=False, crop_pad=0, cutout=6), gen())
    assert y.shape == x.shape and y.dtype == dtype
    changed = (y != x).any(1)  # [B, H, W]; a random pixel equals the fill on all 3 channels with odds ~1e-7
    area = changed.flatten(1).sum(1)
    assert (area <= 36).all() and (area > 0).all()
    assert (area == 36).float().mean() > 0.3  # a square fully inside the image
    assert (area < 36).any()  # ... and squares cut by the edges: every pixel is hidden equally often
    rows, cols = changed.any(2), changed.any(1)  # the changed pixels form a box: rows x cols
    assert torch.equal(changed, rows[:, :, None] & cols[:, None, :])
    fill = y.permute(1, 0, 2, 3)[:, changed].float()  # [C, changed pixels]: one value per channel
    assert (fill.amax(1) - fill.amin(1)).max() == 0
    assert torch.allclose(fill[:, 0], x.float().mean(dim=(0, 2, 3)), atol=0.51)
    assert augment_images(x, AugmentConfig(flip=False, crop_pad=0, cutout=0), gen()).equal(x)


def test_generator_determinism():
    x = torch.randn(16, 3, 16, 16)
    cfg = AugmentConfig()
    assert torch.equal(augment_images(x, cfg, gen(1)), augment_images(x, cfg, gen(1)))
    assert not torch.equal(augment_images(x, cfg, gen(1)), augment_images(x, cfg, gen(2)))
    w = torch.randn(4, 8000) * 0.1
    assert torch.equal(augment_waves(w, cfg, SR, gen(1)), augment_waves(w, cfg, SR, gen(1)))
    assert not torch.equal(augment_waves(w, cfg, SR, gen(1)), augment_waves(w, cfg, SR, gen(2)))


def test_waves_keep_shape():
    w = torch.randn(6, 4000) * 0.1
    y = augment_waves(w, AugmentConfig(), SR, gen())
    assert y.shape == w.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert augment_waves(w, AugmentConfig(**OFF), SR).equal(w)


def _tone(freq, n=8000, b=2):
    t = torch.arange(n) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).repeat(b, 1)


def _peak_hz(w):
    spec = torch.fft.rfft(w * torch.hann_window(w.shape[-1]), dim=-1).abs()
    return spec.argmax(-1).float() * SR / w.shape[-1]


@pytest.mark.parametrize("speed", [0.85, 1.2])
def test_speed_changes_pitch(speed):
    x = _tone(1000.0)
    cfg = AugmentConfig(**{**OFF, "speed": [speed, speed]})
    y = augment_waves(x, cfg, SR, gen())
    assert y.shape == x.shape
    assert (_peak_hz(y[:, 1000:-1000]) - 1000 * speed).abs().max() < 20


def test_noise_snr():
    x = _tone(440.0, b=8)
    for snr in (5.0, 20.0):
        cfg = AugmentConfig(**{**OFF, "noise_snr_db": [snr, snr], "noise_prob": 1.0})
        noise = augment_waves(x, cfg, SR, gen()) - x
        measured = 10 * torch.log10(x.pow(2).mean(-1) / noise.pow(2).mean(-1))
        assert (measured - snr).abs().max() < 0.5


def test_shift_and_gain():
    x = torch.randn(32, 1600)
    y = augment_waves(x, AugmentConfig(**{**OFF, "gain_db": 6.0}), SR, gen())
    ratio = y.norm(dim=-1) / x.norm(dim=-1)
    assert (ratio <= 10 ** (6 / 20) + 1e-4).all() and (ratio >= 10 ** (-6 / 20) - 1e-4).all()
    assert ratio.std() > 0.1
    y = augment_waves(x, AugmentConfig(**{**OFF, "time_shift": 0.01}), SR, gen())  # up to 160 samples
    for i in range(4):
        zeros = (y[i] == 0).sum().item()
        assert zeros <= 160
        if zeros:  # shifted: the rest is the original moved by `zeros` samples one way or the other
            assert torch.equal(y[i, zeros:], x[i, :-zeros]) or torch.equal(y[i, :-zeros], x[i, zeros:])


def test_specaugment_train_only():
    x = torch.randn(8, 1, 40, 101)
    sa = SpecAugment(freq_masks=2, freq_width=6, time_masks=2, time_width=10)
    sa.generator = gen()
    sa.eval()
    assert torch.equal(sa(x), x)
    sa.train()
    y = sa(x)
    assert y.shape == x.shape
    changed = y != x
    assert changed.any()
    # masks are whole bands or whole time spans
    for b in range(8):
        c = changed[b, 0]
        rows, cols = c.all(dim=1), c.all(dim=0)
        assert torch.equal(c, rows[:, None] | cols[None, :])
        assert rows.sum() <= 12 and cols.sum() <= 20


def test_mixup():
    x = torch.randn(8, 3, 4, 4)
    y = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).float()
    xm, ym = mixup(x, y, 0.4, gen())
    xm2, ym2 = mixup(x, y, 0.4, gen())
    assert xm.shape == x.shape and ym.shape == y.shape
    assert torch.allclose(ym.sum(-1), torch.ones(8))
    assert torch.equal(xm, xm2) and torch.equal(ym, ym2)
    assert mixup(x, y, 0.0)[0] is x


def test_mixup_of_uint8_images_stays_in_pixel_levels():
    """The front end reads float images as 0..1: a mix of uint8 pixels must come back as uint8 pixels."""
    x = torch.stack([torch.zeros(3, 4, 4, dtype=torch.uint8), torch.full((3, 4, 4), 200, dtype=torch.uint8)])
    y = torch.eye(2)
    xm, ym = mixup(x, y, 1.0, gen())
    assert xm.dtype == torch.uint8 and xm.max() <= 200
    share = ym[:, 1]  # how much of the bright image each row holds
    assert torch.allclose(xm.float().mean(dim=(1, 2, 3)), 200 * share, atol=0.6)

"""Tiny generated problems and models trained on them in a few seconds, shared by the trust tests."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.models.recognizer import build_recognizer

PATCH = (slice(3, 11), slice(3, 11))  # the informative patch: inside the top-left quadrant of a 32x32 image


def patch_images(n: int, seed: int = 0, size: int = 32):
    """uint8 [n,3,size,size] noise; the class is the stripe direction of a patch in the top-left quadrant."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(40, 216, (n, 3, size, size), generator=g).float()
    y = torch.randint(0, 2, (n,), generator=g)
    stripes = (torch.arange(8) % 2 == 0).float() * 48 + 104  # faint alternating lines (±24 levels)
    horiz, vert = stripes[:, None].expand(8, 8), stripes[None, :].expand(8, 8)
    for i in range(n):
        x[i, :, PATCH[0], PATCH[1]] = horiz if y[i] == 0 else vert
    return x.to(torch.uint8), y


def fit_steps(model, x, y, steps: int = 120, lr: float = 3e-3, batch: int = 32, seed: int = 0):
    """A few Adam steps on raw inputs (the Recognizer normalises inside)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (batch,), generator=g)
        xb = x[idx]
        xb = xb.float() / 32767.0 if xb.dtype == torch.int16 else xb
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def image_model(width: int = 8):
    cfg = RunConfig.from_dict({"model": {"name": "small_cnn", "kwargs": {"width": width}},
                               "image": {"size": 32, "channels": 3}})
    torch.manual_seed(0)
    return build_recognizer(cfg, ["horizontal", "vertical"], "image", {"mean": [0.5] * 3, "std": [0.25] * 3})


@pytest.fixture(scope="session")
def patch_data():
    return patch_images(384, seed=0), patch_images(128, seed=1)


@pytest.fixture(scope="session")
def patch_model(patch_data):
    (x, y), (xt, yt) = patch_data
    model = fit_steps(image_model(), x, y, steps=150)
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    assert acc > 0.9, f"the fixture model did not learn the patch task ({acc:.2f})"
    return model


def tone_waves(n: int, seed: int = 0, sr: int = 8000, seconds: float = 0.5):
    """float waves [n, S]: class = pitch (300 or 600 Hz) with random phase, level and some noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(sr * seconds)) / sr
    y = torch.randint(0, 2, (n,), generator=g)
    f = torch.where(y == 0, 300.0, 600.0)[:, None] * (1 + 0.02 * torch.randn(n, 1, generator=g))
    phase = torch.rand(n, 1, generator=g) * 6.28
    x = torch.sin(2 * torch.pi * f * t + phase) * (0.2 + 0.5 * torch.rand(n, 1, generator=g))
    return x + 0.01 * torch.randn(x.shape, generator=g), y


def audio_model():
    cfg = RunConfig.from_dict({"model": {"name": "bcresnet1"},
                               "audio": {"sample_rate": 8000, "clip_seconds": 0.5, "n_fft": 256,
                                         "win_length": 200, "hop_length": 80, "n_mels": 24},
                               "augment": {"freq_masks": 0, "time_masks": 0}})
    torch.manual_seed(0)
    return build_recognizer(cfg, ["low", "high"], "audio")


@pytest.fixture(scope="session")
def tone_model():
    x, y = tone_waves(256, seed=0)
    return fit_steps(audio_model(), x, y, steps=60), tone_waves(96, seed=1)

"""Image normalisation and channel statistics."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from seehear.errors import ConfigError
from seehear.features import ImageNormalize, channel_stats


def test_normalize_uint8_and_float_agree():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    norm = ImageNormalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    a, b = norm(x), norm(x.float() / 255)
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a[:, 1], (x[:, 1].float() / 255 - 0.4) / 0.25, atol=1e-5)


def test_normalize_stats_are_saved(tmp_path):
    norm = ImageNormalize([0.1], [0.2])
    save_file(norm.state_dict(), str(tmp_path / "n.safetensors"))
    fresh = ImageNormalize([0.0], [1.0])
    fresh.load_state_dict(load_file(str(tmp_path / "n.safetensors")))
    assert torch.allclose(fresh.mean.flatten(), torch.tensor([0.1]))
    with pytest.raises(ConfigError):
        ImageNormalize([0.1, 0.2], [0.3])


def test_channel_stats():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 3, 6, 6), dtype=torch.uint8, generator=g)
    x[:, 2] = 7  # a constant channel must not give std 0
    mean, std = channel_stats(x, chunk=64)
    xf = x.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), xf.mean(dim=(0, 2, 3)), atol=1e-6)
    ref_std = xf[:, :2].std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(torch.tensor(std[:2], dtype=torch.float64), ref_std, atol=1e-6)
    assert std[2] > 0
    sub_mean, _ = channel_stats(x, max_images=100, generator=torch.Generator().manual_seed(1))
    assert abs(sub_mean[0] - mean[0]) < 0.05

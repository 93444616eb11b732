import pytest
import torch

from seehear.trust.corruptions import AUDIO_CORRUPTIONS, IMAGE_CORRUPTIONS, SNR_DB, add_at_snr, corrupt, levels
from seehear.trust.robustness import robustness_eval

# Noise at a fixed seed, blur and compression of a textured image all move further from it as severity grows.
# Motion blur's streak angle is random per severity, and a faster clip has its padded tail compared with silence,
# so for those two only the ends are compared.
ENDS_ONLY = {"motion_blur", "speed"}
SPECTRAL = {"reverberation", "speed"}  # compared by spectrogram, the rest by waveform


def _images():
    """Smooth random scenes (like photos, unlike pixel noise) with a bright square: edges for the blurs."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(6, 3, 6, 6, generator=g) * 180 + 30, size=(32, 32),
                                        mode="bicubic", align_corners=False)
    x[:, :, 9:23, 9:23] = 235
    return x.clamp(0, 255).round().to(torch.uint8)


def _logspec(w):
    """Log-magnitude STFT: reverberation and speed smear and shift sound, which a waveform difference (phase
    sensitive) saturates on at once, but a spectrogram difference tracks."""
    s = torch.stft(w.float(), 512, 128, window=torch.hann_window(512), return_complex=True).abs()
    return torch.log(s + 1e-3)


def _waves(sr=16000):
    t = torch.arange(sr // 2) / sr
    return torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
                        for f in (220.0, 440.0, 880.0, 1500.0)])


@pytest.mark.parametrize("name", sorted(IMAGE_CORRUPTIONS))
def test_image_corruption(name):
    x = _images()
    dists = []
    for s in range(1, 6):
        out = corrupt(x, "image", name, s, seed=3)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.equal(out, corrupt(x, "image", name, s, seed=3))  # deterministic given the seed
        dists.append(float((out.float() - x.float()).pow(2).mean()))
    assert dists[0] > 0, "severity 1 must change the image"
    if name in ENDS_ONLY:
        assert dists[-1] > dists[0]
    else:
        assert all(b > a for a, b in zip(dists, dists[1:])), dists


@pytest.mark.parametrize("name", sorted(AUDIO_CORRUPTIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.int16])
def test_audio_corruption(name, dtype):
    x = _waves()
    x = (x * 32767).round().to(torch.int16) if dtype == torch.int16 else x
    ref = x.float() / (32767.0 if dtype == torch.int16 else 1.0)
    dists = []
    for s in range(1, levels("audio", name) + 1):
        out = corrupt(x, "audio", name, s, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype
        o = out.float() / (32767.0 if dtype == torch.int16 else 1.0)
        dists.append(float((_logspec(o) - _logspec(ref)).abs().mean()) if name in SPECTRAL
                     else float((o - ref).pow(2).mean()))
    assert dists[0] > 0
    if name in ENDS_ONLY:
        assert dists[-1] > dists[0]
    else:
        assert all(b > a for a, b in zip(dists, dists[1:])), dists


@pytest.mark.parametrize("name", ["white_noise", "pink_noise", "babble_noise"])
def test_noise_snr_is_the_one_asked_for(name):
    x = _waves() * 0.5  # headroom: no clipping, so the measured SNR is the mixing SNR
    for s, snr in enumerate(SNR_DB, start=1):
        noise = corrupt(x, "audio", name, s, seed=2) - x
        got = 10 * torch.log10(x.pow(2).mean(-1) / noise.pow(2).mean(-1))
        assert torch.allclose(got, torch.full_like(got, snr), atol=0.6), (snr, got)


def test_add_at_snr_exact():
    x = torch.randn(3, 1000)
    n = torch.randn(3, 1000) * 7
    out = add_at_snr(x, n, 10.0)
    got = 10 * torch.log10(x.pow(2).mean(-1) / (out - x).pow(2).mean(-1))
    assert torch.allclose(got, torch.full((3,), 10.0), atol=1e-3)


def test_bad_severity_is_refused():
    with pytest.raises(ValueError):
        corrupt(_images(), "image", "gaussian_noise", 6)
    with pytest.raises(ValueError):
        corrupt(_waves(), "audio", "white_noise", 5)  # the noise corruptions have 4 SNR levels


def test_robustness_eval_on_a_trained_model(patch_model, patch_data):
    _, (x, y) = patch_data
    r = robustness_eval(patch_model, x[:64], y[:64], names=["gaussian_noise", "contrast", "pixelate"])
    assert set(r["per_corruption"]) == {"gaussian_noise", "contrast", "pixelate"}
    assert all(len(v) == 5 for v in r["per_corruption"].values())
    assert r["clean_accuracy"] > 0.9
    # faint 1-px stripes: pixelating at a quarter of the side wipes them out
    assert r["per_corruption"]["pixelate"][-1] < r["clean_accuracy"] - 0.2
    assert 0 <= r["mean_corruption_accuracy"] <= 1

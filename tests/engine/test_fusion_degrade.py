"""Degradation in audio-image training (fusion.degrade_prob): one input of some examples drowned in noise, still
marked present, the rest untouched."""
import torch

from seehear.engine.fusion import degrade


def _pair(b=64):
    g = torch.Generator().manual_seed(0)
    image = torch.randint(60, 200, (b, 1, 16, 16), dtype=torch.uint8, generator=g)
    t = torch.arange(8000) / 8000
    audio = (0.3 * torch.sin(2 * torch.pi * 440 * t)).repeat(b, 1)
    return image, audio


def test_degrade_swamps_one_input_of_the_chosen_examples_only():
    image, audio = _pair()
    di, da, hit = degrade(image, audio, 0.5, torch.Generator().manual_seed(1))
    assert di.dtype == torch.uint8 and di.shape == image.shape and da.shape == audio.shape
    assert hit.any() and not (hit[:, 0] & hit[:, 1]).any()  # never both inputs of one example
    assert 10 < int(hit.sum()) < 54  # about half the examples
    img_changed = (di.float() - image.float()).abs().mean((1, 2, 3)) > 0
    aud_changed = (da - audio).abs().mean(1) > 0
    assert torch.equal(img_changed, hit[:, 0]) and torch.equal(aud_changed, hit[:, 1])
    # heavy: pixel noise of sigma >= 32 moves pixels by ~25 on average; audio SNR <= 10 dB
    assert (di[hit[:, 0]].float() - image[hit[:, 0]].float()).abs().mean() > 15
    noise = da[hit[:, 1]] - audio[hit[:, 1]]
    snr = 10 * torch.log10(audio[hit[:, 1]].pow(2).mean(1) / noise.pow(2).mean(1))
    assert (snr < 11).all()


def test_degrade_off_changes_nothing():
    image, audio = _pair(8)
    di, da, hit = degrade(image, audio, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(di, image) and torch.equal(da, audio) and not hit.any()

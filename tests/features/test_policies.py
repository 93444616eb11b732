"""Per-sample image policies on whole batches: each changes a batch, keeps shape and dtype, draws per image, repeats
with its seed, and its ops agree with torchvision's single-image versions."""
from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from seehear.config import AugmentConfig, RunConfig
from seehear.errors import ConfigError
from seehear.features import augment_images, cutmix
from seehear.features.policies import POLICIES, apply_op, apply_policies

NO_BASE = dict(flip=False, crop_pad=0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(b=32, c=3, size=16):
    g = gen(1)
    # smooth-ish images (a gradient plus noise) so that geometric ops and blurs visibly act
    ramp = torch.linspace(0, 200, size)[None, None, None, :].expand(b, c, size, size)
    return (ramp + torch.rand(b, c, size, size, generator=g) * 55).to(torch.uint8)


SETTINGS = {"randaugment": dict(policy="randaugment"), "trivialaugment": dict(policy="trivialaugment"),
            "augmix": dict(policy="augmix"), "resized_crop": dict(resized_crop=[0.3, 0.6]),
            "color_jitter": dict(color_jitter=0.4)}


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("channels", [1, 3])
def test_policy_changes_batch_keeps_shape_and_dtype(name, channels):
    x = batch(c=channels)
    cfg = AugmentConfig(**NO_BASE, **SETTINGS[name])
    y = augment_images(x, cfg, gen())
    assert y.shape == x.shape and y.dtype == torch.uint8
    changed = (y != x).flatten(1).any(1)
    assert changed.float().mean() > 0.5  # most images change (RandAugment's identity op leaves a few alone)
    # per-sample parameters: the change differs between images (one shared op would move all alike)
    diff = (y.float() - x.float()).flatten(1)
    assert not torch.allclose(diff[0], diff[1]) or not torch.allclose(diff[2], diff[3])
    assert torch.equal(y, augment_images(x, cfg, gen()))  # repeatable from the generator
    assert not torch.equal(y, augment_images(x, cfg, gen(5)))


def test_float_input_keeps_dtype():
    x = batch().float()
    y = apply_policies(x, AugmentConfig(policy="trivialaugment"), gen())
    assert y.dtype == torch.float32 and y.shape == x.shape and not torch.equal(x, y)


def test_grayscale_greys_its_share_of_images_and_leaves_the_rest():
    x = batch(b=200)
    y = apply_policies(x, AugmentConfig(**NO_BASE, grayscale=0.2), gen())
    grey = (y[:, 0] == y[:, 1]).flatten(1).all(1) & (y[:, 1] == y[:, 2]).flatten(1).all(1)
    assert 0.1 < grey.float().mean() < 0.3  # about p of them, drawn per image
    assert torch.equal(y[~grey], x[~grey])  # the others untouched
    assert torch.equal(apply_policies(x, AugmentConfig(**NO_BASE, grayscale=1.0), gen())[:, 0],
                       (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).round().clamp(0, 255).to(torch.uint8))
    one = batch(c=1)  # already grey: nothing to do
    assert torch.equal(apply_policies(one, AugmentConfig(**NO_BASE, grayscale=1.0), gen()), one)


def test_default_is_off_and_leaves_batch_alone():
    x = batch()
    assert AugmentConfig().policy == "none"
    assert torch.equal(apply_policies(x, AugmentConfig(), gen()), x)


def test_unknown_policy_is_one_line_config_error():
    with pytest.raises(ConfigError) as e:
        RunConfig().override(["augment.policy=autoaugmentx"])
    msg = str(e.value)
    assert "\n" not in msg and all(p in msg for p in POLICIES)


@pytest.mark.parametrize("op, ref", [
    ("posterize", lambda im: TF.posterize(im, 4)),  # magnitude 4 -> keep 4 bits
    ("solarize", lambda im: TF.solarize(im, 255 - 100)),
    ("autocontrast", TF.autocontrast),
    ("equalize", TF.equalize),
    ("brightness", lambda im: TF.adjust_brightness(im, 1.5)),
    ("contrast", lambda im: TF.adjust_contrast(im, 1.5)),
    ("color", lambda im: TF.adjust_saturation(im, 1.5)),
    ("sharpness", lambda im: TF.adjust_sharpness(im, 1.5)),
])
def test_ops_agree_with_torchvision(op, ref):
    x = batch(b=4, size=12)
    mag = {"posterize": 4.0, "solarize": 100.0}.get(op, 0.5)
    y = apply_op(op, x.float(), torch.full((4,), mag), torch.ones(4)).round().clamp(0, 255)
    want = torch.stack([ref(im) for im in x]).float()
    assert (y - want).abs().max() <= 2  # rounding differences only


def test_rotate_turns_the_image():
    x = torch.zeros(2, 1, 9, 9)
    x[:, :, 4, 6:] = 255  # a bar to the right of the centre
    y = apply_op("rotate", x, torch.tensor([90.0, 90.0]), torch.tensor([1.0, -1.0]))
    for i in range(2):
        assert y[i, 0, 4, 6:].sum() == 0 and y[i, 0, :, 4].sum() == 3 * 255  # the bar now stands in column 4
    above = [bool(y[i, 0, :4, 4].sum() > 0) for i in range(2)]
    assert above[0] != above[1]  # on one side of the centre for +90 degrees, on the other for -90


def test_cutmix_pastes_a_box_and_mixes_labels_by_its_area():
    x = torch.arange(8, dtype=torch.float32)[:, None, None, None].expand(8, 1, 16, 16).contiguous()
    y = torch.eye(8)
    out, t = cutmix(x, y, 1.0, gen(3))
    assert out.shape == x.shape
    other = (out != x).flatten(1).float().mean(1)  # share of each image pasted from another
    assert torch.allclose(other, 1 - t.diagonal(), atol=1e-6)  # labels mixed by the pasted share
    assert torch.allclose(t.sum(1), torch.ones(8))

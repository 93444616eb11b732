"""The synthesize task: a GAN trained for a few steps writes images of the right size in a folder per class;
audio data or too-large images are one-line errors; the models' pieces behave as their papers say."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

import seehear
from seehear.errors import ConfigError, DataError, RunError
from seehear.models.vision.gan import GAN

FAST = ["train.threads=1", "data.workers=1", "train.batch_size=8", "train.epochs=2", "model.kwargs.width=8",
        "model.kwargs.z_dim=16", "image.size=16"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    return make_shape_images(tmp_path_factory.mktemp("gan") / "shapes", classes=3, per_class=8, size=16)


@pytest.mark.slow
def test_gan_trains_and_writes_images_per_class(shapes, tmp_path):
    from seehear.tasks.synthesize import generate

    r = seehear.train(shapes, tmp_path / "gan", task="synthesize", overrides=FAST, progress=False)
    assert r.meta["task"] == "synthesize" and r.meta["train"]["steps"] > 0
    assert (r.run_dir / "samples.png").is_file() and (r.run_dir / "report.html").is_file()
    out = generate(r.run_dir, tmp_path / "synthetic", per_class=5)
    labels = sorted(p.name for p in shapes.iterdir() if p.is_dir())
    assert sorted(out["per_class"]) == labels
    for label in labels:
        files = sorted((tmp_path / "synthetic" / label).glob("*.png"))
        assert len(files) == 5
        with Image.open(files[0]) as im:
            assert im.size == (16, 16) and im.mode == "RGB"
    # the generated folder is data seehear can read
    from seehear.data.sources import load_source

    src = load_source(tmp_path / "synthetic")
    assert src.labels == labels and len(src.records) == 15
    with pytest.raises(RunError, match="GAN run"):
        seehear.load_run(r.run_dir)  # a GAN is not a recognizer: a one-line hint instead


def test_audio_data_is_a_one_line_error(tmp_path):
    from seehear.data.synth import make_tones

    tones = make_tones(tmp_path / "tones", classes=2, per_class=3)
    with pytest.raises(DataError, match="images only") as e:
        seehear.train(tones, tmp_path / "gan", task="synthesize", overrides=FAST, progress=False)
    assert "\n" not in str(e.value)


def test_too_large_images_are_a_one_line_error(shapes, tmp_path):
    with pytest.raises(ConfigError, match="16, 32, 64") as e:
        seehear.train(shapes, tmp_path / "gan", task="synthesize", overrides=[*FAST, "image.size=128"],
                      progress=False)
    assert "\n" not in str(e.value)


def test_cli_error_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "seehear", "synthesize", str(tmp_path / "nothing"), "--per-class",
                        "3", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("size", [16, 32, 64])
def test_generator_and_projection_discriminator_shapes(size):
    gan = GAN(["a", "b"], size=size, channels=3, z_dim=8, width=8)
    y = torch.tensor([0, 1, 1])
    x = gan.generator(torch.randn(3, 8), y)
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1
    d = gan.discriminator(x, y)
    assert d.shape == (3,)
    # projection: the class changes the score through embed(y)·h
    assert not torch.allclose(d, gan.discriminator(x, 1 - y))
    img = gan.sample(y)
    assert img.dtype == torch.uint8 and img.shape == (3, 3, size, size)


def test_diff_augment_is_differentiable_and_random():
    from seehear.engine.gan import diff_augment

    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x * 2 - 1, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(y, x * 2 - 1)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ema_generator_follows_the_live_one():
    gan = GAN(["a", "b"], size=16, z_dim=8, width=8)
    p = next(gan.generator.parameters())
    e = next(gan.generator_ema.parameters())
    with torch.no_grad():
        p.add_(1.0)
    before = e.clone()
    gan.update_ema(0.9)
    assert torch.allclose(e, before * 0.9 + p * 0.1)


def test_discriminator_steps_per_generator_step_are_counted_across_epochs(shapes, tmp_path):
    # 24 images in batches of 8: 3 batches an epoch, fewer than d_steps=4, so an epoch-local count would never step
    # the generator; 3 epochs = 9 discriminator steps and 2 generator steps, both kept for a resume
    r = seehear.train(shapes, tmp_path / "gan", task="synthesize", progress=False,
                      overrides=[*FAST, "train.epochs=3", "model.kwargs.d_steps=4"])
    from seehear.engine.checkpoint import AtomicCheckpointIO

    read = AtomicCheckpointIO().load_checkpoint  # what --resume reads: weights_only, nothing unpickled
    ckpt = read(r.run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["gan_steps"] == {"d": 9, "g": 2}
    one = seehear.train(shapes, tmp_path / "gan1", task="synthesize", progress=False,
                        overrides=[*FAST, "train.epochs=3", "model.kwargs.d_steps=1"])
    ckpt1 = read(one.run_dir / "checkpoints" / "last.ckpt")
    assert ckpt1["gan_steps"] == {"d": 9, "g": 9}


@pytest.mark.parametrize("bad", ["0", "1.5", "two"])
def test_bad_discriminator_steps_are_a_one_line_error(shapes, tmp_path, bad):
    with pytest.raises(ConfigError, match="d_steps") as e:
        seehear.train(shapes, tmp_path / "gan", task="synthesize", overrides=[*FAST, f"model.kwargs.d_steps={bad}"],
                      progress=False)
    assert "\n" not in str(e.value)

"""Every training option the README promises changes what training does (tiny generated images, seconds each)."""
import csv

import pytest
import torch
from safetensors.torch import load_file

import seehear

pytestmark = pytest.mark.slow
BASE = ["train.threads=1", "train.batch_size=8", "data.workers=1", "model.name=small_cnn", "train.epochs=4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    return make_shape_images(tmp_path_factory.mktemp("opts") / "shapes", classes=2, per_class=20, size=16)


def _train(images, out, *extra):
    return seehear.train(images, out, overrides=[*BASE, *extra], progress=False)


def _weights(r):
    return load_file(str(r.run_dir / "model.safetensors"))


def _losses(r):
    rows = csv.DictReader((r.run_dir / "logs" / "metrics.csv").open())
    return [float(x["train_loss"]) for x in rows if x.get("train_loss")]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deterministic_runs_repeat_exactly_and_seeds_differ(images, tmp_path):
    a = _train(images, tmp_path / "a", "train.deterministic=true")
    b = _train(images, tmp_path / "b", "train.deterministic=true")
    c = _train(images, tmp_path / "c", "train.deterministic=true", "train.seed=1")
    assert _same(_weights(a), _weights(b))
    assert not _same(_weights(a), _weights(c))


def test_time_budget_stops_training(images, tmp_path):
    r = _train(images, tmp_path / "r", "train.epochs=10000", "train.time_budget=2")
    t = r.meta["train"]
    assert t["stopped_early"] and 0 < t["steps"] and t["epochs_run"] < 10000
    assert 1.0 < t["train_seconds"] <= 2.0  # used, and never overrun


def test_early_stopping_stops_when_validation_stops_improving(images, tmp_path):
    r = _train(images, tmp_path / "r", "train.epochs=40", "train.lr=0", "train.early_stopping=1")
    assert r.meta["train"]["epochs_run"] <= 3  # nothing learns at lr 0: patience 1 ends it after epoch 2


def test_ema_changes_the_weights_kept(images, tmp_path):
    plain = _train(images, tmp_path / "plain", "train.deterministic=true")
    ema = _train(images, tmp_path / "ema", "train.deterministic=true", "train.ema=0.9")
    assert not _same(_weights(plain), _weights(ema))  # the kept weights are the average, not the last step's


def test_gradient_clipping_bounds_the_steps(images, tmp_path):
    sgd = ["train.optimizer=sgd", "train.lr=0.1", "train.momentum=0", "train.weight_decay=0", "train.epochs=6"]
    free = _losses(_train(images, tmp_path / "free", *sgd, "train.grad_clip=none"))
    clipped = _losses(_train(images, tmp_path / "clipped", *sgd, "train.grad_clip=1e-9"))
    assert free[-1] < 0.9 * free[0]  # it learns ...
    assert abs(clipped[-1] - clipped[0]) < 0.02 * clipped[0]  # ... unless every step is clipped to nothing


def test_class_weights_are_inverse_frequency(images, tmp_path, monkeypatch):
    import seehear.engine.trainer as trainer

    seen = {}
    real = trainer.ClassifyModule

    def spy(model, cfg, steps_per_epoch, class_weights=None, **kw):
        seen["w"] = class_weights
        return real(model, cfg, steps_per_epoch, class_weights=class_weights, **kw)

    monkeypatch.setattr(trainer, "ClassifyModule", spy)
    skewed = tmp_path / "skewed"
    for i, f in enumerate(sorted((images / "circle").glob("*.png"))):
        if i < 4:
            (skewed / "circle").mkdir(parents=True, exist_ok=True)
            (skewed / "circle" / f.name).write_bytes(f.read_bytes())
    (skewed / "square").mkdir()
    for f in sorted((images / "square").glob("*.png")):
        (skewed / "square" / f.name).write_bytes(f.read_bytes())
    r = seehear.train(skewed, tmp_path / "r", overrides=[*BASE, "train.class_weights=true", "data.test_fraction=0",
                                                         "data.valid_fraction=0"], progress=False)
    w = seen["w"]
    counts = r.meta["data"]["counts"]
    assert counts["train"] == 24 and w is not None
    assert w[0] / w[1] == pytest.approx(20 / 4)  # the rare class weighs 5x


def test_bf16_training_learns(images, tmp_path):
    r = _train(images, tmp_path / "r", "train.precision=bf16", "train.epochs=6")
    assert r.meta["train"]["precision"] == "bf16-mixed"
    losses = _losses(r)
    assert losses[-1] < 0.9 * losses[0]

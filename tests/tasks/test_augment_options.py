"""End to end: the augmentation and imbalance options train a classifier, the run shows what it trained on, and
post-hoc logit adjustment travels with the run to predict."""
from __future__ import annotations

import pytest
import torch

import seehear
from seehear.engine.run_folder import load_run

pytestmark = pytest.mark.slow
BASE = ["train.threads=1", "train.batch_size=8", "data.workers=1", "model.name=small_cnn", "train.epochs=3"]


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    src = make_shape_images(tmp_path_factory.mktemp("aug") / "shapes", classes=3, per_class=24, size=16)
    for i, f in enumerate(sorted((src / sorted(p.name for p in src.iterdir())[2]).glob("*.png"))):
        if i >= 6:
            f.unlink()  # one class keeps 6 of 24 examples
    return src


def test_policies_and_imbalance_options_train_and_show_their_examples(skewed, tmp_path):
    r = seehear.train(skewed, tmp_path / "r", progress=False, overrides=[
        *BASE, "augment.policy=randaugment", "augment.cutmix=1.0", "augment.mixup=0.2", "augment.color_jitter=0.3",
        "augment.resized_crop=[0.5, 1.0]", "train.sampler=balanced", "train.loss=focal", "train.drw=0.5",
        "train.class_weight_kind=effective", "train.posthoc_tau=1.0"])
    run = r.run_dir
    assert (run / "augmented.png").is_file()
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Augmented training examples" in html and "trained on" in html
    counts = r.meta["data"]["train_per_class"]
    assert sorted(counts.values())[0] < sorted(counts.values())[-1] / 2
    assert 0 <= r.meta["train"]["data_wait_share"] < 1
    loaded = load_run(run)
    shift = torch.tensor(r.meta["logit_shift"])
    assert torch.allclose(loaded.model.logit_shift, shift)
    assert int(shift.argmin()) == int(torch.tensor(list(counts.values())).argmin())  # the rare class's prior
    rows = seehear.predict(run, skewed)
    assert len(rows) == sum(1 for _ in skewed.rglob("*.png")) and all("label" in row for row in rows)


def test_smoothing_that_defeats_logit_adjustment_is_said_and_kept(skewed, tmp_path, capsys):
    # 19 vs 5 training examples: a prior shift of log(3.8) = 1.33 nats; smoothing 0.6 over 3 classes caps margins at
    # log(0.6 / 0.2) = 1.10 nats, so the adjusted model would over-favour the rare class
    r = seehear.train(skewed, tmp_path / "r", progress=False, overrides=[
        *BASE, "train.epochs=1", "train.posthoc_tau=1.0", "train.label_smoothing=0.6"])
    said = r.meta["imbalance_warning"]
    assert "label_smoothing=0" in said and f"warning: {said}" in capsys.readouterr().err
    assert r.meta["logit_shift"]  # said, not changed: the adjustment still applies

"""Transfer learning (`train --from RUN`, engine/transfer.py): a model started from another run's backbone learns a
related task from a few examples better than one started from scratch, and the run records where it started."""
import json

import pytest
import torch

import seehear
from seehear.errors import ConfigError, RunError
from seehear.data.synth import make_shape_images

pytestmark = pytest.mark.slow
BASE = ["train.threads=1", "train.batch_size=16", "data.workers=1", "model.name=small_cnn", "train.optimizer=adamw",
        "train.lr=0.003", "image.size=16", "image.tta=none"]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    data = make_shape_images(root / "many", classes=4, per_class=40, size=16, seed=0)
    return seehear.train(data, root / "src", overrides=[*BASE, "train.epochs=8"], progress=False).run_dir


def test_transfer_beats_scratch_on_few_examples(source_run, tmp_path):
    few = make_shape_images(tmp_path / "few", classes=3, per_class=5, size=16, seed=1)
    held = make_shape_images(tmp_path / "held", classes=3, per_class=30, size=16, seed=2)
    few_settings = [*BASE, "train.epochs=12", "data.valid_fraction=0", "data.test_fraction=0"]
    scratch = seehear.train(few, tmp_path / "scratch", overrides=few_settings, progress=False)
    moved = seehear.train(few, tmp_path / "moved", overrides=[*few_settings, "train.freeze_epochs=3",
                                                              "train.backbone_lr_scale=0.1"],
                          from_run=source_run, progress=False)
    acc_scratch = seehear.evaluate(scratch.run_dir, held, progress=False)["accuracy"]
    acc_moved = seehear.evaluate(moved.run_dir, held, progress=False)["accuracy"]
    assert acc_moved > acc_scratch + 0.1, (acc_moved, acc_scratch)
    assert acc_moved > 0.6  # chance is 1/3
    meta = json.loads((moved.run_dir / "meta.json").read_text())
    t = meta["transfer"]
    assert t["from"] == str(source_run.resolve()) and t["head"] == "new"
    from seehear.engine.transfer import sha256

    assert t["sha256"] == sha256(source_run / "model.safetensors") and len(t["sha256"]) == 64
    assert meta["config"]["model"]["init_from"] == str(source_run)


def test_freeze_keeps_backbone_then_unfreezes(source_run):
    from seehear.config import RunConfig
    from seehear.engine.classify import ClassifyModule
    from seehear.engine.transfer import head_parameters

    run = seehear.load_run(source_run)
    cfg = RunConfig.from_dict({**run.cfg.to_dict(), "train": {**run.cfg.to_dict()["train"], "freeze_epochs": 2,
                                                               "backbone_lr_scale": 0.1, "norm_lr_scale": 1.0}})
    m = ClassifyModule(run.model, cfg, steps_per_epoch=4)
    head = head_parameters(run.model.backbone)
    m.freeze_backbone(True)
    trainable = {id(p) for p in run.model.parameters() if p.requires_grad}
    assert trainable == head
    m.freeze_backbone(False)
    assert all(p.requires_grad for p in run.model.backbone.parameters())
    opt = m.configure_optimizers()["optimizer"]
    lrs = {id(p): g["initial_lr"] for g in opt.param_groups for p in g["params"]}
    assert all(lrs[i] == pytest.approx(cfg.train.lr) for i in head)
    assert {round(v / cfg.train.lr, 6) for i, v in lrs.items() if i not in head} == {0.1}


def test_bad_sources_are_one_line_errors(source_run, tmp_path, tones_dir, capsys):
    from seehear.cli import main

    few = make_shape_images(tmp_path / "few", classes=2, per_class=4, size=16, seed=1)
    with pytest.raises(ConfigError, match="16x16 images but this run uses 24x24"):
        seehear.train(few, tmp_path / "a", overrides=[*BASE, "image.size=24"], from_run=source_run, progress=False)
    with pytest.raises(ConfigError, match="is an image run but the data is audio"):
        seehear.train(tones_dir, tmp_path / "b", overrides=["train.epochs=1"], from_run=source_run, progress=False)
    with pytest.raises(ConfigError, match=r"20 shape mismatch.*features\.0\.0\.weight \(32, 3, 3, 3\) vs \(8, 3, 3, 3\)"):
        seehear.train(few, tmp_path / "c", overrides=[*BASE, "model.kwargs.width=8", "train.epochs=1"],
                      from_run=source_run, progress=False)
    with pytest.raises(RunError, match="not a finished"):
        seehear.train(few, tmp_path / "d", overrides=BASE, from_run=tmp_path, progress=False)
    assert main(["train", str(few), "--out", str(tmp_path / "e"), "--from", str(tmp_path / "nothing"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a finished seehear run folder" in err and err.count("\n") == 0


def test_fastnet_transfer_keeps_the_source_whitening_stem(tmp_path):
    # fastnet sets its first layer from the data before training; a transferred one must keep the source's, which
    # its later layers learned on (new eigenvectors come in another order and sign), and keep it frozen
    sets = ["train.threads=1", "data.workers=1", "model.name=fastnet", "image.size=16", "image.tta=none",
            "train.epochs=1", "train.batch_size=16"]
    src = seehear.train(make_shape_images(tmp_path / "a", classes=3, per_class=12, size=16, seed=0), tmp_path / "s",
                        overrides=sets, progress=False).run_dir
    other = make_shape_images(tmp_path / "b", classes=2, per_class=12, size=16, seed=3)
    moved = seehear.train(other, tmp_path / "m", overrides=sets, from_run=src, progress=False).run_dir
    scratch = seehear.train(other, tmp_path / "f", overrides=sets, progress=False).run_dir
    stem = lambda run: seehear.load_run(run).model.backbone.stem[0].weight  # noqa: E731
    assert torch.equal(stem(moved), stem(src))
    assert not torch.allclose(stem(scratch), stem(src), atol=1e-3)  # the data's own whitening differs

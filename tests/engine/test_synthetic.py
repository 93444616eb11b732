"""Rare classes topped up with a GAN's images (`train --synthetic RUN`): how many per class, only in the training
split, recorded in meta.json; bad settings and runs are one-line errors; `synthesize RUN --evaluate` writes
quality.json with the real floor beside the generated figures."""
from __future__ import annotations

import hashlib
import json
import pytest
import torch

import seehear
from seehear.config import RunConfig, SyntheticConfig
from seehear.engine.synthetic import check_fits, top_up_counts
from seehear.errors import ConfigError, InputMismatchError, RunError

GAN = ["train.threads=1", "data.workers=1", "train.batch_size=8", "train.epochs=2", "model.kwargs.width=8",
       "model.kwargs.z_dim=16", "image.size=16"]
CLS = ["train.threads=1", "data.workers=1", "train.batch_size=8", "train.epochs=2", "image.size=16"]
COUNTS = {"circle": 24, "square": 12, "triangle": 6}


def test_top_up_counts():
    assert top_up_counts([100, 50, 10], 1.0) == [0, 50, 90]  # balanced
    assert top_up_counts([100, 50, 10], 0.5) == [0, 0, 40]  # lifted to half the largest
    assert top_up_counts([100, 50, 10], 0.0) == [0, 0, 0]
    assert top_up_counts([30, 30, 30], 1.0) == [0, 0, 0]  # balanced data gets none
    assert top_up_counts([100, 50, 10], 2.0) == [100, 150, 190]  # above 1: every class


@pytest.mark.parametrize("ratio", [-0.1, 10.5])
def test_ratio_out_of_range_is_one_line(ratio):
    with pytest.raises(ConfigError, match="synthetic.ratio must be between 0 and 10") as e:
        RunConfig.from_dict({"synthetic": {"ratio": ratio}})
    assert "\n" not in str(e.value)
    assert RunConfig.from_dict({"synthetic": {"ratio": 10}}).synthetic.ratio == 10.0


def test_ratio_out_of_range_on_the_command_line(tmp_path, capsys):
    from seehear.cli import main
    from seehear.data.synth import make_shape_images

    data = make_shape_images(tmp_path / "d", classes=2, per_class=4, size=16)
    assert main(["train", str(data), "--out", str(tmp_path / "r"), "--quiet", "--set", "synthetic.ratio=11"]) == 2
    err = capsys.readouterr().err
    assert "synthetic.ratio" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _fake_run(folder, meta):
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_a_run_that_is_not_a_gan_is_one_line(tmp_path):
    run = _fake_run(tmp_path / "cls", {"task": "classify", "labels": ["a", "b"]})
    cfg = RunConfig.from_dict({"image": {"size": 16}})
    with pytest.raises(RunError, match="not a GAN run") as e:
        check_fits(SyntheticConfig(run=str(run)), cfg, "image")
    assert "\n" not in str(e.value)
    with pytest.raises(RunError, match="does not exist"):
        check_fits(SyntheticConfig(run=str(tmp_path / "nothing")), cfg, "image")


def test_size_mismatch_and_audio_are_one_line(tmp_path):
    run = _fake_run(tmp_path / "gan", {"task": "synthesize", "labels": ["a", "b"],
                                       "input": {"modality": "image", "size": 32, "channels": 3}})
    with pytest.raises(InputMismatchError, match="image.size=32") as e:
        check_fits(SyntheticConfig(run=str(run)), RunConfig.from_dict({"image": {"size": 16}}), "image")
    assert "\n" not in str(e.value)
    check_fits(SyntheticConfig(run=str(run)), RunConfig.from_dict({"image": {"size": 32}}), "image")  # fits
    with pytest.raises(InputMismatchError, match="makes images"):
        check_fits(SyntheticConfig(run=str(run)), RunConfig(), "audio")


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    data = make_shape_images(tmp_path_factory.mktemp("syn") / "shapes", classes=3, per_class=24, size=16)
    for name, keep in COUNTS.items():
        for f in sorted((data / name).glob("*.png"))[keep:]:
            f.unlink()
    return data


@pytest.fixture(scope="module")
def gan_run(imbalanced, tmp_path_factory):
    return seehear.train(imbalanced, tmp_path_factory.mktemp("gan") / "gan", task="synthesize", overrides=GAN,
                         progress=False).run_dir


@pytest.mark.slow
def test_synthetic_images_go_to_the_minority_classes_of_the_training_split_only(imbalanced, gan_run, tmp_path):
    from seehear.tasks.classify import TASK

    src = TASK.load(imbalanced, None)
    plain_cfg, _ = TASK.resolve(src, {}, CLS)
    syn_cfg, _ = TASK.resolve(src, {"synthetic": {"run": str(gan_run), "ratio": 1.0}}, CLS)
    plain = TASK.prepare(src, plain_cfg, tmp_path / "a", False, False).state["parts"]
    p = TASK.prepare(src, syn_cfg, tmp_path / "b", False, False)
    syn = p.state["parts"]
    for split in ("valid", "test"):  # held-out data stays real, untouched
        assert torch.equal(plain[split][0], syn[split][0]) and torch.equal(plain[split][1], syn[split][1])
    n = len(plain["train"][1])
    assert torch.equal(syn["train"][0][:n], plain["train"][0])  # the real images first, as they were
    real = torch.bincount(plain["train"][1], minlength=3)
    added = torch.bincount(syn["train"][1][n:], minlength=3)
    largest = int(real.argmax())
    assert added[largest] == 0 and (added > 0).sum() == 2  # only the minority classes
    assert torch.equal(real + added, torch.full((3,), int(real.max())))  # ratio 1: balanced
    info = p.meta["synthetic"]
    assert info["per_class"] == dict(zip(src.labels, added.tolist())) and info["total"] == int(added.sum())
    assert p.meta["data"]["train_per_class"] == dict(zip(src.labels, real.tolist()))  # real counts stay real

    r = seehear.train(imbalanced, tmp_path / "run", synthetic=gan_run, overrides=[*CLS, "synthetic.ratio=0.5"],
                      progress=False)
    m = r.meta["synthetic"]
    half = top_up_counts(real.tolist(), 0.5)
    assert m["per_class"] == dict(zip(src.labels, half)) and m["generator"] == "ema"
    assert m["sha256"] == hashlib.sha256((gan_run / "model.safetensors").read_bytes()).hexdigest()
    assert r.meta["data"]["counts"] == json.loads((tmp_path / "run" / "meta.json").read_text())["data"]["counts"]
    assert sum(r.metrics["per_class"][l]["support"] for l in src.labels) == r.meta["data"]["counts"]["test"]


@pytest.mark.slow
def test_evaluate_writes_quality_with_the_real_floor(imbalanced, gan_run, tmp_path):
    from seehear.tasks.synthesize import evaluate_gan

    clf = seehear.train(imbalanced, tmp_path / "real", overrides=CLS, progress=False).run_dir
    q = evaluate_gan(gan_run, clf, per_class=6)
    saved = json.loads((gan_run / "quality.json").read_text())
    assert saved["gan_test_accuracy"] == q["gan_test_accuracy"] and 0 <= q["gan_test_accuracy"] <= 1
    for key in ("generated", "real_held_out"):
        fig = saved[key]
        assert fig["frechet"] >= 0 and 0 <= fig["precision"] <= 1 and 0 <= fig["recall"] <= 1 and fig["k"] == 3
    assert saved["generated"]["n"] == 18 and saved["real_held_out"]["n"] == json.loads(
        (clf / "meta.json").read_text())["data"]["counts"]["test"]
    assert sorted(saved["gan_test_per_class"]) == sorted(COUNTS)
    assert "Sample quality" in (gan_run / "report.html").read_text()
    with pytest.raises(RunError, match="classification run"):
        evaluate_gan(gan_run, gan_run)

"""`seehear pretrain --method byol|dino` (tasks/pretrain.py over engine/ema_ssl.py): a run folder like SimCLR's whose
model is the student alone, a kNN monitor above chance, and a labelled run started from it with --from."""
import json

import pytest
import torch
from safetensors.torch import load_file

import seehear
from seehear.cli import main
from seehear.data.synth import make_shape_images, make_tones

FAST = ["train.threads=1", "data.workers=1", "image.size=16", "train.batch_size=32"]


@pytest.fixture(scope="module")
def plain_shapes(tmp_path_factory):
    # light shapes on a dark ground: on the random-colour shapes (conftest shapes_dir) no method, SimCLR included,
    # gets reliably above chance in a few seconds of CPU (kNN 0.28-0.50 after 15 epochs, 36 held out)
    return make_shape_images(tmp_path_factory.mktemp("plain") / "shapes", classes=3, per_class=60, size=16,
                             plain=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["byol", "dino"])
def test_ema_pretraining_run_starts_a_labelled_run(plain_shapes, tmp_path, capsys, method):
    out = tmp_path / "ssl"
    assert main(["pretrain", str(plain_shapes), "--out", str(out), "--method", method, "--epochs", "6", "--quiet",
                 *sum((["--set", s] for s in FAST), [])]) == 0
    assert "kNN accuracy" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "done" and meta["pretrain"]["method"] == method and meta["pretrain"]["knn_monitor"]
    assert meta["pretrain"]["ema_momentum"] == 0.99 and len(meta["train"]["knn_by_epoch"]) == 6
    knn = json.loads((out / "metrics.json").read_text())["valid"]["knn_accuracy"]
    assert knn > 0.5  # 3 classes: chance 1/3
    weights = load_file(str(out / "model.safetensors"))
    assert weights and not any(k.startswith(("teacher", "heads", "predictor", "prototypes")) for k in weights)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(k.startswith("teacher.") for k in ckpt)  # resume has the teacher (tests/engine/test_byol_dino.py)
    if method == "byol":  # the CLI resumes a pretraining run (here a finished one: nothing left to train)
        assert main(["pretrain", str(plain_shapes), "--out", str(out), "--resume", "--quiet"]) == 0
        again = json.loads((out / "meta.json").read_text())
        assert again["train"]["resumed"] and again["pretrain"]["method"] == "byol"
        assert again["train"]["steps"] == meta["train"]["steps"]
    few = make_shape_images(tmp_path / "few", classes=2, per_class=6, size=16, seed=3, plain=True)
    r = seehear.train(few, tmp_path / "down", from_run=out, progress=False,
                      overrides=[*FAST, "train.epochs=2", "train.freeze_epochs=1"])
    t = r.meta["transfer"]
    assert t["source_task"] == "pretrain" and t["head"] == "new" and r.meta["status"] == "done"


def test_image_methods_are_refused_on_audio_in_one_line(tmp_path, capsys):
    data = make_tones(tmp_path / "tones", classes=2, per_class=10, seconds=0.2)
    assert main(["pretrain", str(data), "--out", str(tmp_path / "a"), "--method", "byol"]) == 2
    err = capsys.readouterr().err.strip()
    assert "on audio use masked or contrastive" in err and len(err.splitlines()) == 1
    assert main(["pretrain", str(data), "--out", str(tmp_path / "b"), "--method", "dino",
                 "--set", "pretrain.teacher_temperature=0"]) == 2  # the method is refused before its settings
    assert "on audio use masked or contrastive" in capsys.readouterr().err


def test_settings_out_of_range_are_one_line(tmp_path, capsys):
    data = make_shape_images(tmp_path / "s", classes=2, per_class=8, size=16)
    assert main(["pretrain", str(data), "--out", str(tmp_path / "a"), "--method", "dino",
                 "--set", "pretrain.teacher_temperature=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "temperatures > 0" in err and len(err.splitlines()) == 1

"""Self-supervised pretraining (tasks/pretrain.py, engine/simclr.py): NT-Xent does what it says, a SimCLR run is a
run folder with a kNN monitor, and a labelled run starts from it with --from."""
import json

import pytest
import torch

import seehear
from seehear.cli import main
from seehear.data.synth import make_shape_images
from seehear.config import RunConfig
from seehear.engine.simclr import SimCLRModule, knn_accuracy, nt_xent
from seehear.errors import DataError
from seehear.models.recognizer import build_recognizer
from seehear.recipes import RECIPES
from seehear.tasks.pretrain import pretrain

FAST = ["train.threads=1", "data.workers=1", "image.size=16", "train.batch_size=32"]


def test_nt_xent_prefers_matching_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    same = nt_xent(z, z + 0.01 * torch.randn(16, 8, generator=g))
    other = nt_xent(z, torch.randn(16, 8, generator=g))
    assert same < other
    # the positive pair is the only thing that makes it small: a shuffled partner is as bad as noise
    assert nt_xent(z, z[torch.randperm(16, generator=g)]) > same + 1.0


def test_knn_accuracy_counts_votes():
    tr = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    ytr = torch.tensor([0, 0, 1, 1])
    assert knn_accuracy(tr, ytr, torch.tensor([[1.0, 0.05], [0.0, 1.0]]), torch.tensor([0, 1]), k=1) == 1.0
    assert knn_accuracy(tr, ytr, torch.tensor([[1.0, 0.05]]), torch.tensor([1]), k=1) == 0.0


@pytest.mark.parametrize("projector", ["mlp", "linear"])
def test_simclr_head_is_trained_but_not_part_of_the_model(projector):
    cfg = RunConfig.from_dict({"model": {"name": "small_cnn"}, "image": {"size": 16},
                               "pretrain": {"projector": projector}, "train": {"threads": 1}})
    model = build_recognizer(cfg, [f"z{i}" for i in range(8)], "image", {"mean": [0.5] * 3, "std": [0.25] * 3})
    module = SimCLRModule(model, cfg, steps_per_epoch=1).eval()  # eval: dropout would make two calls differ
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    z = module.project(x)
    assert z.shape == (4, 8)
    trained = {id(p) for p in module.trained().parameters()}
    assert {id(p) for p in model.parameters()} <= trained
    if projector == "mlp":  # BatchNorm, ReLU, Linear after the backbone's last Linear: in the checkpoint, not the model
        assert {id(p) for p in module.projector.parameters()} <= trained
        assert any(k.startswith("projector.") for k in module.state_dict())
        assert not torch.allclose(z, module.model.logits(x))
    else:
        assert module.projector is None and len(trained) == len(list(model.parameters()))
        assert torch.allclose(z, module.model.logits(x))


def test_ssl_recipe_uses_simclr_views():
    a = RECIPES["image-ssl"]["augment"]
    assert a["resized_crop"] and a["color_jitter"] > 0 and 0 < a["grayscale"] < 1
    assert RunConfig().pretrain.projector == "mlp"


@pytest.mark.slow
def test_pretrain_run_starts_a_labelled_run(tmp_path, capsys):
    data = make_shape_images(tmp_path / "pool", classes=3, per_class=24, size=16, seed=0)
    assert main(["pretrain", str(data), "--out", str(tmp_path / "ssl"), "--epochs", "3", "--quiet",
                 *sum((["--set", s] for s in FAST), [])]) == 0
    meta = json.loads((tmp_path / "ssl" / "meta.json").read_text())
    assert meta["task"] == "pretrain" and meta["status"] == "done" and meta["pretrain"]["knn_monitor"]
    assert len(meta["train"]["knn_by_epoch"]) == 3
    knn = json.loads((tmp_path / "ssl" / "metrics.json").read_text())["valid"]["knn_accuracy"]
    assert 0 <= knn <= 1
    few = make_shape_images(tmp_path / "few", classes=2, per_class=6, size=16, seed=3)
    r = seehear.train(few, tmp_path / "down", from_run=tmp_path / "ssl", progress=False,
                      overrides=[*FAST, "train.epochs=2", "train.freeze_epochs=1"])
    t = r.meta["transfer"]
    assert t["source_task"] == "pretrain" and t["head"] == "new" and r.meta["config"]["model"]["name"] == "small_cnn"


def test_a_run_from_before_the_nonlinear_head_resumes(tmp_path):
    """A pretraining run saved before pretrain.projector existed (linear head, no projector weights in its
    checkpoint, no such line in its config.yaml) resumes under today's mlp default."""
    data = make_shape_images(tmp_path / "pool", classes=2, per_class=12, size=16, seed=0)
    out = tmp_path / "old"
    assert main(["pretrain", str(data), "--out", str(out), "--epochs", "1", "--quiet", "--set",
                 "pretrain.projector=linear", *sum((["--set", s] for s in FAST), [])]) == 0
    cfg = (out / "config.yaml").read_text()
    assert "projector: linear" in cfg
    (out / "config.yaml").write_text(cfg.replace("  projector: linear\n", ""))
    assert main(["pretrain", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    assert json.loads((out / "meta.json").read_text())["train"]["resumed"]


def test_pretrain_refuses_too_few_and_unknown_methods(tmp_path, capsys):
    data = make_shape_images(tmp_path / "three", classes=3, per_class=1, size=16)
    with pytest.raises(DataError, match="has 3 image"):
        pretrain(data, tmp_path / "ssl", progress=False)
    assert main(["pretrain", str(data), "--out", str(tmp_path / "x"), "--method", "mae"]) == 2
    assert "not built" in capsys.readouterr().err

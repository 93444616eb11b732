"""BYOL and DINO (engine/ema_ssl.py): the EMA teacher follows the student by the momentum rule and never gets a
gradient, the losses do what the papers say, and a resumed run continues with the checkpoint's teacher."""
import math

import lightning.pytorch as pl
import pytest
import torch

from seehear.config import RunConfig
from seehear.engine.ema_ssl import (BYOLModule, DINOModule, Prototypes, byol_loss, dino_loss, ema_update,
                                    momentum_at, update_center)
from seehear.engine.loaders import Batches
from seehear.engine.trainer import fit_module
from seehear.models.recognizer import build_recognizer

LABELS = [f"z{i}" for i in range(16)]


def _cfg(**train):
    return RunConfig.from_dict({"model": {"name": "small_cnn"}, "image": {"size": 16},
                                "pretrain": {"prototypes": 32},
                                "train": {"threads": 1, "precision": "32", "optimizer": "adamw", "lr": 1e-3,
                                          "epochs": 2, **train}})


def _model(cfg):
    return build_recognizer(cfg, LABELS, "image", {"mean": [0.5] * 3, "std": [0.25] * 3})


def _images(n=16, seed=0):
    return torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_momentum_rises_from_base_to_one_by_a_cosine():
    assert momentum_at(0.0, 0.99) == pytest.approx(0.99)
    assert momentum_at(0.5, 0.99) == pytest.approx(0.995)
    assert momentum_at(1.0, 0.99) == pytest.approx(1.0)
    assert momentum_at(0.25, 0.99) < momentum_at(0.75, 0.99)


@pytest.mark.parametrize("kind", [BYOLModule, DINOModule])
def test_teacher_follows_student_by_the_momentum_rule_and_gets_no_gradient(kind):
    torch.manual_seed(0)
    cfg = _cfg()
    m = kind(_model(cfg), cfg, steps_per_epoch=4)
    opt = m.configure_optimizers()["optimizer"]
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) in trained for p in m.heads.parameters())  # the predictor / prototypes learn
    assert not any(id(p) in trained for p in m.teacher.parameters())
    m.log = lambda *a, **k: None
    loss = m.training_step((_images(), torch.zeros(16, dtype=torch.long)), 0)
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in m.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.model.parameters())
    for g in opt.param_groups:
        g["lr"] = 1e-2  # (the schedule starts at 0)
    opt.step()  # the student moves; the teacher has not yet
    before = [t.detach().clone() for t in m.teacher.parameters()]
    student = [s.detach().clone() for s in m.student_parts().parameters()]
    assert any(not torch.equal(b, s) for b, s in zip(before, student))
    ema_update(m.teacher, m.student_parts(), 0.9)
    for t, b, s in zip(m.teacher.parameters(), before, student):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * s)


def test_byol_loss_is_zero_for_matching_directions_and_symmetric():
    g = torch.Generator().manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(8, 6, generator=g), dim=1)
    assert byol_loss(z, z, z, z) == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(3 * z, z, z, 2 * z) == pytest.approx(0.0, abs=1e-6)  # only the direction counts
    assert byol_loss(z, z, -z, -z) == pytest.approx(4.0)
    pa, pb, ta, tb = (torch.randn(8, 6, generator=g) for _ in range(4))
    assert byol_loss(pa, pb, ta, tb) == pytest.approx(float(byol_loss(pb, pa, tb, ta)))  # the views swapped
    assert byol_loss(pa, pb, ta, tb) > 0.5


def test_dino_center_update_and_sharper_teacher():
    c = torch.zeros(4)
    t = [torch.tensor([[1.0, 0, 0, 0], [3.0, 0, 0, 0]]), torch.tensor([[0, 2.0, 0, 0], [0, 2.0, 0, 0]])]
    update_center(c, t, 0.9)
    torch.testing.assert_close(c, 0.1 * torch.tensor([1.0, 1.0, 0, 0]))
    update_center(c, t, 0.9)
    torch.testing.assert_close(c, 0.19 * torch.tensor([1.0, 1.0, 0, 0]))
    # at the default temperatures the teacher's softmax over the same prototype scores is the sharper one
    cfg = RunConfig().pretrain
    assert cfg.teacher_temperature < cfg.student_temperature
    head = Prototypes(16, 64, seed=0)
    with torch.no_grad():
        scores = head(torch.randn(32, 16, generator=torch.Generator().manual_seed(2)))
    assert scores.abs().max() <= 1.0 + 1e-5  # cosines

    def entropy(logits):
        p = torch.softmax(logits, dim=1)
        return float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())

    assert entropy(scores / cfg.teacher_temperature) < entropy(scores / cfg.student_temperature) - 0.5
    # the student's loss is smallest where it agrees with the teacher's other view
    teacher = [scores, scores.roll(1, 0)]
    agree = dino_loss([scores.roll(1, 0), scores], teacher, torch.zeros(64), 0.1, 0.04)
    disagree = dino_loss([scores.flip(1), scores.flip(1)], teacher, torch.zeros(64), 0.1, 0.04)
    assert agree < disagree


def test_centring_removes_a_prototype_every_image_prefers():
    """Against collapse: a teacher whose scores all favour one prototype gives a flat target once centred."""
    collapsed = torch.zeros(8, 5)
    collapsed[:, 2] = 1.0
    c = torch.zeros(5)
    for _ in range(100):
        update_center(c, [collapsed, collapsed], 0.9)
    target = torch.softmax((collapsed - c) / 0.04, dim=1)
    assert target.max() < 0.21 and torch.softmax(collapsed / 0.04, dim=1).max() > 0.99
    assert math.isclose(float(target.sum(1).mean()), 1.0, rel_tol=1e-5)


class _Grab(pl.Callback):
    def __init__(self):
        self.at_start = None

    def on_train_start(self, trainer, module):
        self.at_start = {k: v.clone() for k, v in module.teacher.state_dict().items()}


def test_resume_restores_the_teacher(tmp_path):
    x = _images(32, seed=3)
    y = torch.zeros(32, dtype=torch.long)

    def run(epochs, resume=False):
        torch.manual_seed(5)
        cfg = _cfg(epochs=epochs)
        loader = Batches(x, y, 16, shuffle=True, seed=0, drop_last=True)
        m = BYOLModule(_model(cfg), cfg, len(loader))
        grab = _Grab()
        fit_module(m, cfg, loader, None, tmp_path / "run", resume=resume, progress=False, callbacks=[grab])
        return m, grab

    first, _ = run(1)
    trained = {k: v.clone() for k, v in first.teacher.state_dict().items()}
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(k.startswith("teacher.") for k in ckpt) and any(k.startswith("heads.predictor") for k in ckpt)
    resumed, grab = run(2, resume=True)
    fresh = BYOLModule(_model(_cfg()), _cfg(), 2).teacher.state_dict()
    for k, v in trained.items():
        torch.testing.assert_close(grab.at_start[k], v)  # the checkpoint's teacher, not a fresh copy
    assert any(not torch.equal(fresh[k], v) for k, v in trained.items() if v.is_floating_point())
    assert resumed.current_epoch == 2

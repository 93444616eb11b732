"""Muon (engine/muon.py): the Newton-Schulz step orthogonalises, filters keep their norm, the rest is plain SGD, and
train.optimizer=muon routes conv filters to it."""
import torch
import torch.nn as nn

from seehear.engine.muon import Muon, orthogonalize


def test_orthogonalize_flattens_the_spectrum_of_wide_and_tall_matrices():
    g = torch.Generator().manual_seed(0)
    for shape in [(16, 72), (72, 16)]:
        # a badly conditioned matrix: singular values from 1e-3 to 10
        u, _ = torch.linalg.qr(torch.randn(shape[0], shape[0], generator=g))
        v, _ = torch.linalg.qr(torch.randn(shape[1], shape[1], generator=g))
        k = min(shape)
        s = torch.logspace(-3, 1, k)
        m = u[:, :k] @ torch.diag(s) @ v[:, :k].T
        o = orthogonalize(m, steps=5)
        assert o.shape == m.shape and o.dtype == m.dtype
        sv = torch.linalg.svdvals(o)
        assert sv[: k // 2].min() > 0.5 and sv.max() < 1.6, sv  # the top half (spread 1e-1..10) now all near 1
        # same singular vectors: o is close to u v^T in direction
        target = u[:, :k] @ v[:, :k].T
        cos = (o * target).sum() / (o.norm() * target.norm())
        assert cos > 0.8


def test_muon_keeps_filter_norm_and_moves_the_other_groups_like_sgd():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, bias=True)
    conv.weight.data.mul_(7.0)  # off the fixed norm: Muon rescales it first
    sgd_ref = nn.Conv2d(4, 8, 3, bias=True)
    sgd_ref.bias.data.copy_(conv.bias.data)
    opt = Muon([{"params": [conv.weight], "muon": True, "lr": 0.1, "momentum": 0.6},
                {"params": [conv.bias], "weight_decay": 0.01}], lr=0.05, momentum=0.85, nesterov=True)
    ref = torch.optim.SGD([sgd_ref.bias], lr=0.05, momentum=0.85, nesterov=True, weight_decay=0.01)
    x = torch.randn(5, 4, 6, 6)
    before = conv.weight.detach().clone()
    for _ in range(3):
        for m, o in ((conv, opt), (sgd_ref, ref)):
            o.zero_grad()
            m(x).square().mean().backward()
            if o is ref:
                sgd_ref.bias.grad.copy_(conv.bias.grad)  # same gradient on the bias, so the updates must match
            o.step()
    # after the last step the norm is sqrt(out) give or take one update (lr x singular values <= ~1.5, 8 rows)
    assert abs(conv.weight.norm() - 8 ** 0.5) < 0.1 * 1.6 * 8 ** 0.5
    assert conv.weight.norm() < 0.5 * before.norm(), "the 7x-scaled filters were brought back to the fixed norm"
    assert not torch.allclose(conv.weight, before * (8 ** 0.5 / before.norm()))
    torch.testing.assert_close(conv.bias, sgd_ref.bias)


def test_muon_optimizer_from_config_gives_filters_to_muon():
    from seehear.config import RunConfig
    from seehear.engine.classify import ClassifyModule
    from seehear.models.recognizer import build_recognizer

    cfg = RunConfig()
    cfg.model.name = "fastnet"
    cfg.train.optimizer, cfg.train.lr, cfg.train.muon_lr, cfg.train.norm_lr_scale = "muon", 0.2, 0.3, 2.0
    model = build_recognizer(cfg, ["a", "b", "c"], "image")
    opt = ClassifyModule(model, cfg, steps_per_epoch=4).configure_optimizers()["optimizer"]
    assert isinstance(opt, Muon)
    head, norms, whiten_bias, filters = opt.param_groups
    assert [(g["muon"], g["initial_lr"]) for g in opt.param_groups] == [(False, 0.2), (False, 0.4), (False, 0.2),
                                                                         (True, 0.3)]
    assert all(p.ndim == 4 for p in filters["params"])
    assert [p.ndim for p in head["params"]] == [2]  # the linear head
    assert norms["params"] and all(p.ndim == 1 for p in norms["params"])  # BatchNorm shifts: norm_lr_scale
    assert whiten_bias["params"] == [model.backbone.stem[0].bias]  # a bias outside a norm layer: the base lr
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in opt.param_groups) == n_trainable


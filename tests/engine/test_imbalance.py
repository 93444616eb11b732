"""Class imbalance: samplers draw as they say, focal / logit-adjusted losses relate to cross-entropy as the papers
define them, effective-number weights sit between none and inverse frequency, DRW switches at its progress, and
post-hoc adjustment travels with a run."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.engine.classify import ClassifyModule
from seehear.engine.imbalance import (class_weights, classification_loss, drw_active, log_prior, posthoc_adjust,
                                      sample_weights)
from seehear.engine.loaders import Batches
from seehear.models.recognizer import build_recognizer

SKEWED = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)  # ratio 90


def drawn(sampler):
    w = sample_weights(SKEWED, 3, sampler)
    loader = Batches(torch.zeros(len(SKEWED), 1), SKEWED, 100, shuffle=True, seed=0, sample_weights=w)
    ys = torch.cat([y for _ in range(5) for _, y in loader])
    return torch.bincount(ys, minlength=3).float() / len(ys)


def test_balanced_sampler_draws_classes_evenly_from_skewed_data():
    share = drawn("balanced")
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03)


def test_sqrt_sampler_draws_in_proportion_to_root_counts():
    want = torch.tensor([900.0, 90, 10]).sqrt()
    assert torch.allclose(drawn("sqrt"), want / want.sum(), atol=0.03)
    assert sample_weights(SKEWED, 3, "none") is None


def test_effective_number_weights_lie_between_none_and_inverse():
    counts = torch.tensor([900.0, 90, 10])
    assert torch.allclose(class_weights(counts, "effective", beta=0.0), torch.ones(3))  # beta 0: no re-weighting
    inv = class_weights(counts, "inverse")
    assert inv[2] / inv[0] == pytest.approx(90)
    eff = class_weights(counts, "effective", beta=0.999)
    assert 1 < eff[2] / eff[0] < 90 and eff.mean() == pytest.approx(1.0)
    near = class_weights(counts, "effective", beta=0.999999)  # beta -> 1: inverse frequency
    assert near[2] / near[0] == pytest.approx(90, rel=0.01)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_loss_is_cross_entropy_at_gamma_zero(weighted, smoothing):
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 4, generator=g) * 3, torch.randint(0, 4, (16,), generator=g)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0]) if weighted else None
    ce = F.cross_entropy(logits, y, weight=w, label_smoothing=smoothing)
    focal0 = classification_loss(logits, y, kind="focal", gamma=0.0, weight=w, smoothing=smoothing)
    assert focal0 == pytest.approx(float(ce), rel=1e-5)
    focal2 = classification_loss(logits, y, kind="focal", gamma=2.0, weight=w, smoothing=smoothing)
    assert focal2 < ce  # down-weights the easy examples


def test_focal_loss_focuses_on_hard_examples():
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # an easy example and a hard one, both class 0
    y = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, y, reduction="none")
    each = [float(classification_loss(logits[i:i + 1], y[i:i + 1], kind="focal", gamma=2.0)) for i in range(2)]
    assert each[0] / float(ce[0]) < each[1] / float(ce[1])  # the easy one loses a larger share of its loss


def test_logit_adjusted_loss_is_ce_of_prior_shifted_logits():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(32, 3, generator=g), torch.randint(0, 3, (32,), generator=g)
    lp = log_prior(torch.tensor([900.0, 90, 10]))
    la = classification_loss(logits, y, kind="logit_adjusted", log_prior_=lp, tau=1.0)
    assert float(la) == pytest.approx(float(F.cross_entropy(logits + lp, y)), rel=1e-6)
    assert float(la) != pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-3)
    # balanced prior: the shift is the same for every class, and softmax ignores it
    flat = log_prior(torch.tensor([5.0, 5, 5]))
    assert float(classification_loss(logits, y, kind="logit_adjusted", log_prior_=flat)) == pytest.approx(
        float(F.cross_entropy(logits, y)), rel=1e-6)
    adj = posthoc_adjust(logits, lp, 1.0)
    assert torch.allclose(adj - logits, -lp.expand_as(logits))  # rare classes are raised after training


def test_drw_switches_class_weights_on_at_the_stated_progress():
    assert not drw_active(0.49, 0.5) and drw_active(0.5, 0.5) and drw_active(0.0, None)
    cfg = RunConfig.from_dict({"train": {"drw": 0.5, "label_smoothing": 0.0}, "model": {"name": "small_cnn"},
                               "image": {"size": 16}})
    model = build_recognizer(cfg, ["a", "b"], "image")
    w = torch.tensor([0.2, 5.0])
    module = ClassifyModule(model, cfg, steps_per_epoch=4, class_weights=w)
    logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])
    plain, weighted = F.cross_entropy(logits, y), F.cross_entropy(logits, y, weight=w)
    module.progress = lambda: 0.4
    assert float(module.loss(logits, y, train=True)) == pytest.approx(float(plain))
    module.progress = lambda: 0.6
    assert float(module.loss(logits, y, train=True)) == pytest.approx(float(weighted))
    module.progress = lambda: 0.0
    assert float(module.loss(logits, y)) == pytest.approx(float(weighted))  # validation: the weighted objective


def test_posthoc_shift_applies_outside_training_only():
    cfg = RunConfig.from_dict({"model": {"name": "small_cnn"}, "image": {"size": 16}})
    model = build_recognizer(cfg, ["a", "b", "c"], "image")
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    model.eval()
    before = model(x)
    shift = [math.log(0.9), math.log(0.09), math.log(0.01)]
    model.set_logit_shift(shift)
    assert torch.allclose(model(x), before - torch.tensor(shift), atol=1e-5)
    assert "logit_shift" not in model.state_dict()  # runs without it load as before


def test_smoothing_conflict_when_the_prior_shift_exceeds_the_smoothing_margin():
    from seehear.engine.imbalance import smoothing_conflict

    skewed = torch.tensor([5000, 2000, 50])  # log(100) = 4.6 nats between the commonest and the rarest
    # smoothing 0.2 over 3 classes caps the margin at log(0.8667 / 0.0667) = 2.56 nats: adjustment overcorrects
    msg = smoothing_conflict(skewed, 0.2, 1.0)
    assert msg and "2.56 nats" in msg and "4.61 nats" in msg and "label_smoothing=0" in msg
    assert smoothing_conflict(skewed, 0.0, 1.0) is None  # no smoothing: margins are not capped
    assert smoothing_conflict(skewed, 0.2, 0.0) is None  # no adjustment
    assert smoothing_conflict(skewed, 0.01, 1.0) is None  # cap log(0.9933/0.0033) = 5.7 nats > 4.6
    assert smoothing_conflict(torch.tensor([100, 100, 0]), 0.2, 1.0) is None  # balanced where present

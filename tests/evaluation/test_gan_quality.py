"""The sample-quality figures behave as their definitions say: Fréchet distance 0 for a set against itself, the
squared mean shift for shifted Gaussians; precision and recall 1 for identical sets, 0 for far-apart ones."""
from __future__ import annotations

import numpy as np
import pytest

from seehear.evaluation.gan_quality import compare, frechet_distance, precision_recall


def _gauss(n=2000, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_frechet_of_a_set_with_itself_is_zero():
    a = _gauss()
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_grows_with_the_mean_shift_as_its_square():
    a, b = _gauss(seed=0), _gauss(seed=1)
    base = frechet_distance(a, b)  # two samples of the same Gaussian: small, not zero
    assert base < 0.1
    shifts = [0.5, 1.0, 2.0]
    fds = [frechet_distance(a, b + s) for s in shifts]
    assert fds == sorted(fds) and fds[0] > base
    for s, fd in zip(shifts, fds):  # ||mu_a - mu_b||^2 = d * s^2 for equal covariances
        assert fd == pytest.approx(8 * s * s, rel=0.1, abs=0.15)


def test_frechet_sees_a_change_of_spread():
    a = _gauss()
    assert frechet_distance(a, a * 2) > 1.0  # Tr(S + 4S - 2*2S) = d for unit S


def test_precision_recall_of_identical_sets_is_one():
    a = _gauss(300, 4)
    pr = precision_recall(a, a.copy())
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0 and pr["k"] == 3


def test_precision_recall_of_far_disjoint_sets_is_zero():
    a = _gauss(300, 4)
    pr = precision_recall(a, a + 100.0)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0


def test_a_collapsed_set_has_precision_but_no_recall():
    real = _gauss(400, 4)
    fake = np.repeat(real[:5], 80, axis=0) + 1e-3 * _gauss(400, 4, seed=3)  # all near five real points
    pr = precision_recall(real, fake)
    assert pr["precision"] > 0.9 and pr["recall"] < 0.1


def test_compare_reports_sizes_and_refuses_tiny_sets():
    a = _gauss(50, 4)
    c = compare(a, a[:20])
    assert c["n_reference"] == 50 and c["n"] == 20 and 0 <= c["precision"] <= 1
    with pytest.raises(ValueError):
        precision_recall(a, a[:3])

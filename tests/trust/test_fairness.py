import numpy as np

from seehear.trust.fairness import MIN_GROUP, bootstrap_ci, fairness_report, group_metrics, group_values


def test_worst_group_gap_and_intervals():
    rng = np.random.default_rng(0)
    n = 300
    groups = np.array(["a"] * 150 + ["b"] * 150)
    y = rng.integers(0, 3, n)
    pred = y.copy()
    wrong = np.r_[rng.random(150) < 0.05, rng.random(150) < 0.40]  # b is much worse
    pred[wrong] = (y[wrong] + 1) % 3
    r = group_metrics(y, pred, groups)
    assert r["worst_group"] == "b" and r["best_group"] == "a"
    pa, pb = r["per_group"]["a"]["accuracy"], r["per_group"]["b"]["accuracy"]
    assert abs(r["gap"] - (pa - pb)) < 1e-12 and abs(r["ratio_to_best"] - pb / pa) < 1e-12
    lo, hi = r["per_group"]["b"]["ci95"]
    assert lo < pb < hi and hi - lo < 0.25
    assert r["per_group"]["a"]["ci95"][0] > r["per_group"]["b"]["ci95"][1]  # clearly separated


def test_uar_differs_from_accuracy_on_imbalanced_groups():
    y = np.array([0] * 18 + [1] * 2 + [0] * 10 + [1] * 10)
    pred = np.array([0] * 20 + [0] * 10 + [1] * 10)  # group g1 never predicts class 1
    groups = ["g1"] * 20 + ["g2"] * 20
    r = fairness_report(y, pred, groups, column="site")
    assert r["accuracy"]["per_group"]["g1"]["accuracy"] == 0.9
    assert r["uar"]["per_group"]["g1"]["uar"] == 0.5
    assert r["uar"]["worst_group"] == "g1"


def test_one_group_and_small_groups_are_said_so():
    y = np.zeros(30, dtype=int)
    assert "one group" in group_metrics(y, y, ["x"] * 30)["note"]
    r = group_metrics(np.zeros(25, int), np.r_[np.zeros(20, int), np.ones(5, int)], ["big"] * 20 + ["tiny"] * 5)
    assert r["too_small"] == ["tiny"] and "ci95" not in r["per_group"]["tiny"]
    assert len(r["per_group"]["tiny"]) == 2 and MIN_GROUP > 5


def test_per_item_values_for_wer_lists():
    wer = [0.1] * 20 + [0.5] * 20
    r = group_values(wer, ["s1"] * 20 + ["s2"] * 20, name="wer")
    assert r["worst_group"] == "s2" and abs(r["gap"] - 0.4) < 1e-9  # lower is better for errors


def test_bootstrap_interval_covers_the_mean():
    v = np.random.default_rng(1).normal(5, 1, 400)
    lo, hi = bootstrap_ci(lambda ix: v[ix].mean(), len(v))
    assert lo < v.mean() < hi and hi - lo < 0.4

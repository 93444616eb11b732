"""compute_metrics against hand-computed values; the dict must survive json unchanged."""
import json

import numpy as np
import pytest

from seehear.evaluation import compute_metrics, expected_calibration_error, format_metrics, predictions_table


def probs_for(pred, k, conf=0.8):
    """Rows putting `conf` on the predicted class and spreading the rest evenly."""
    p = np.full((len(pred), k), (1 - conf) / (k - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2, 1, 0])
    m = compute_metrics(y, probs_for(y, 3, conf=1.0), ["a", "b", "c"])
    assert m["accuracy"] == m["macro_f1"] == m["balanced_accuracy"] == 1.0
    assert m["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert m["ece"] == pytest.approx(0.0)
    assert m["nll"] == pytest.approx(0.0, abs=1e-6)
    assert m["n"] == 6 and "top5_accuracy" not in m and "per_group" not in m


def test_imbalanced_hand_computed():
    # 8 x "a", 2 x "b"; every "a" right, one "b" called "a": accuracy 0.9 but UAR (1 + 0.5) / 2 = 0.75
    y = np.array([0] * 8 + [1, 1])
    pred = np.array([0] * 8 + [1, 0])
    m = compute_metrics(y, probs_for(pred, 2), ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.9)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    a, b = m["per_class"]["a"], m["per_class"]["b"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(8 / 9), 1.0, 8)
    assert (b["precision"], b["recall"], b["support"]) == (1.0, 0.5, 2)
    assert a["f1"] == pytest.approx(16 / 17) and b["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((16 / 17 + 2 / 3) / 2)
    assert m["confusion"] == [[8, 0], [1, 1]]  # rows = true class
    assert m["nll"] == pytest.approx(-(9 * np.log(0.8) + np.log(0.2)) / 10)


def test_class_missing_from_split_is_listed_with_zero_support():
    y = np.array([0, 0, 1])
    m = compute_metrics(y, probs_for(y, 3), ["a", "b", "never"])
    assert m["per_class"]["never"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == 1.0 and m["balanced_accuracy"] == 1.0  # an absent class does not count as a miss
    assert len(m["confusion"]) == 3


def test_per_group_and_worst_group():
    y = np.array([0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 0, 0, 1, 0])  # speaker s1: 2/2, s2: 1/2, s3: 0/2
    m = compute_metrics(y, probs_for(pred, 2), ["a", "b"], groups=["s1", "s1", "s2", "s2", "s3", "s3"])
    assert m["per_group"] == {"s1": {"accuracy": 1.0, "n": 2}, "s2": {"accuracy": 0.5, "n": 2},
                              "s3": {"accuracy": 0.0, "n": 2}}
    assert m["worst_group"] == {"group": "s3", "accuracy": 0.0, "n": 2}
    with pytest.raises(ValueError):
        compute_metrics(y, probs_for(pred, 2), ["a", "b"], groups=["s1"])


def test_ece_calibrated_vs_overconfident():
    # confidence 0.8 and exactly 80% right: calibrated
    y = np.zeros(10, dtype=int)
    pred = np.array([0] * 8 + [1] * 2)
    assert compute_metrics(y, probs_for(pred, 2, 0.8), ["a", "b"])["ece"] == pytest.approx(0.0)
    # confidence 0.99 and only half right: ECE = |0.5 - 0.99|
    pred = np.array([0] * 5 + [1] * 5)
    assert compute_metrics(y, probs_for(pred, 2, 0.99), ["a", "b"])["ece"] == pytest.approx(0.49)
    # two bins, weighted by count: 3 at 0.9 (all right: gap 0.1), 1 at 0.6 (wrong: gap 0.6) -> (0.3 + 0.6) / 4
    p = np.array([[0.9, 0.1]] * 3 + [[0.6, 0.4]])
    assert expected_calibration_error(p, np.array([0, 0, 0, 1])) == pytest.approx(0.225)


def test_top5_accuracy():
    k = 7
    # true class 0 ranked 1st, 3rd, 6th and 7th by the model -> 2 of 4 in the top five
    scores = np.array([[7, 6, 5, 4, 3, 2, 1], [5, 7, 6, 4, 3, 2, 1], [2, 7, 6, 5, 4, 3, 1], [1, 7, 6, 5, 4, 3, 2]],
                      dtype=float)
    p = scores / scores.sum(axis=1, keepdims=True)
    m = compute_metrics(np.zeros(4, dtype=int), p, [f"c{i}" for i in range(k)])
    assert m["top5_accuracy"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(0.25)


def test_json_round_trip_plain_types():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 8)).astype(np.float32)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # float32 rows: sum drifts from 1 by ~1e-7
    y = rng.integers(0, 8, size=40)
    m = compute_metrics(y, p, [f"class {i}" for i in range(8)], groups=rng.choice(["x", "y"], size=40))

    def walk(x):
        assert type(x) in (int, float, str, list, dict), type(x)  # no numpy scalars sneak in
        for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else []):
            walk(v)

    walk(m)
    assert json.loads(json.dumps(m)) == m
    assert {"accuracy", "macro_f1", "balanced_accuracy", "per_class", "confusion", "top5_accuracy",
            "per_group", "worst_group", "ece", "nll", "n", "labels"} <= set(m)


def test_rejects_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="softmax"):
        compute_metrics([0, 1], [[2.0, -1.0], [0.5, 3.0]], ["a", "b"])
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], ["a", "b"])
    with pytest.raises(ValueError):
        compute_metrics([0, 5], [[1.0, 0.0], [0.0, 1.0]], ["a", "b"])


def test_format_metrics_and_predictions_table():
    y = np.array([0] * 8 + [1, 1])
    m = compute_metrics(y, probs_for(np.array([0] * 9 + [1]), 2), ["cat", "dog"])
    text = format_metrics(m)
    assert "90.00%" in text and "UAR 75.00%" in text and "macro-F1" in text
    lines = text.splitlines()
    assert lines[-2].startswith("cat") and lines[-1].startswith("dog") and lines[-1].rstrip().endswith("2")

    rows = predictions_table(["x.png", "y.png"], [[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], ["a", "b", "c"], k=2)
    assert rows[0] == {"file": "x.png", "label": "b", "probability": 0.6,
                       "top": [{"label": "b", "probability": 0.6}, {"label": "c", "probability": 0.3}]}
    assert [t["label"] for t in rows[1]["top"]] == ["a", "c"]
    assert len(predictions_table(["x"], [[0.4, 0.6]], ["a", "b"], k=5)[0]["top"]) == 2  # k capped at K

"""Per-group results with bootstrap confidence intervals: accuracy and UAR (balanced accuracy) for classifiers,
or the mean of any per-item values (WER per utterance, errors per trial) for other tasks.

Groups come from a manifest column or the Records' group field (speaker, subject). Groups too small for an
interval (fewer than MIN_GROUP items) are reported with their point value and flagged, and a single group is said
to be just that: there is nothing to compare.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

MIN_GROUP = 10
N_BOOT = 1000


def _uar(y: np.ndarray, pred: np.ndarray) -> float:
    classes = np.unique(y)
    return float(np.mean([(pred[y == c] == c).mean() for c in classes]))


def _acc(y: np.ndarray, pred: np.ndarray) -> float:
    return float((y == pred).mean())


def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = N_BOOT, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile interval of stat(indices) over n_boot resamples of range(n) with replacement."""
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def _summary(per: dict, key: str, higher_is_better: bool, groups_seen: int) -> dict:
    out: dict = {"metric": key, "per_group": per, "groups": groups_seen, "higher_is_better": higher_is_better}
    if groups_seen < 2:
        out["note"] = "one group only: nothing to compare"
        return out
    pick = min if higher_is_better else max
    worst = pick(per, key=lambda g: per[g][key])
    best = (max if higher_is_better else min)(per, key=lambda g: per[g][key])
    w, b = per[worst][key], per[best][key]
    out.update(worst_group=worst, best_group=best, worst=w, best=b, gap=abs(b - w),
               ratio_to_best=(w / b) if b else None)
    small = [g for g, v in per.items() if v["n"] < MIN_GROUP]
    if small:
        out["too_small"] = small
        out["note"] = f"{len(small)} group(s) under {MIN_GROUP} items: point values only, no interval"
    return out


def group_metrics(y_true, y_pred, groups: Sequence, metric: str = "accuracy", n_boot: int = N_BOOT,
                  seed: int = 0) -> dict:
    """Per-group accuracy or UAR with 95% bootstrap intervals, the worst group, the gap and ratio to the best."""
    y, p = np.asarray(y_true), np.asarray(y_pred)
    g = np.asarray(["(none)" if v is None or v == "" else str(v) for v in groups])
    if not (len(y) == len(p) == len(g)):
        raise ValueError(f"y_true, y_pred and groups must be as long; got {len(y)}, {len(p)}, {len(g)}")
    fn = {"accuracy": _acc, "uar": _uar}[metric]
    per = {}
    for name in sorted(set(g.tolist())):
        yi, pi = y[g == name], p[g == name]
        row = {metric: fn(yi, pi), "n": int(len(yi))}
        if len(yi) >= MIN_GROUP:
            row["ci95"] = list(bootstrap_ci(lambda ix: fn(yi[ix], pi[ix]), len(yi), n_boot, seed=seed))
        per[name] = row
    return _summary(per, metric, True, len(per))


def group_values(values: Sequence[float], groups: Sequence, name: str = "value", higher_is_better: bool = False,
                 n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Per-group mean of per-item values (word errors per utterance / words, EER trial errors ...), with
    bootstrap intervals over the items; lower is better unless said otherwise."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(["(none)" if x is None or x == "" else str(x) for x in groups])
    if len(v) != len(g):
        raise ValueError(f"values and groups must be as long; got {len(v)} and {len(g)}")
    per = {}
    for gname in sorted(set(g.tolist())):
        vi = v[g == gname]
        row = {name: float(vi.mean()), "n": int(len(vi))}
        if len(vi) >= MIN_GROUP:
            row["ci95"] = list(bootstrap_ci(lambda ix: float(vi[ix].mean()), len(vi), n_boot, seed=seed))
        per[gname] = row
    return _summary(per, name, higher_is_better, len(per))


def fairness_report(y_true, y_pred, groups: Sequence, column: str, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Accuracy and UAR per group of one column, as trust.json holds them."""
    return {"column": column, "accuracy": group_metrics(y_true, y_pred, groups, "accuracy", n_boot, seed),
            "uar": group_metrics(y_true, y_pred, groups, "uar", n_boot, seed)}

"""Per-group results with bootstrap confidence intervals: accuracy and UAR (balanced accuracy) for classifiers,
or the mean of any per-item values (WER per utterance, errors per trial) for other tasks.

Groups come from a manifest column or the Records' group field (speaker, subject). Groups too small for an
interval (fewer than MIN_GROUP items) are reported with their point value and flagged, and a single group is said
to be just that: there is nothing to compare.

Utterances of one speaker are not independent draws: resampling them one by one makes intervals too narrow when
a group (a gender, an age band) holds a few speakers with many recordings each. Given `clusters` (the speaker of
each item), the bootstrap resamples whole clusters within each group instead (the cluster bootstrap); the result
says which unit was resampled and how many clusters each group has.
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


def cluster_bootstrap_ci(stat: Callable[[np.ndarray], float], clusters: Sequence, n_boot: int = N_BOOT,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of stat(indices) where each resample draws whole clusters with replacement (all items
    of a drawn cluster, as often as it is drawn)."""
    c = np.asarray([str(v) for v in clusters])
    members = [np.flatnonzero(c == k) for k in sorted(set(c.tolist()))]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        vals.append(stat(np.concatenate([members[i] for i in pick])))
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def _interval(stat, n: int, clusters, n_boot: int, seed: int, row: dict) -> None:
    """Fill row's ci95 (and clusters count): items resampled, or whole clusters where there are at least two."""
    if clusters is not None:
        k = len(set(clusters.tolist()))
        row["clusters"] = k
        if k >= 2:
            row["ci95"] = list(cluster_bootstrap_ci(stat, clusters, n_boot, seed=seed))
        return
    if n >= MIN_GROUP:
        row["ci95"] = list(bootstrap_ci(stat, n, n_boot, seed=seed))


def _clusters(clusters, n: int):
    if clusters is None:
        return None
    c = np.asarray(["(none)" if v is None or v == "" else str(v) for v in clusters])
    if len(c) != n:
        raise ValueError(f"clusters must be as long as the items; got {len(c)} and {n}")
    return c


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
                  seed: int = 0, clusters: Sequence | None = None) -> dict:
    """Per-group accuracy or UAR with 95% bootstrap intervals, the worst group, the gap and ratio to the best.
    With clusters (e.g. the speaker of each item) the intervals resample whole clusters."""
    y, p = np.asarray(y_true), np.asarray(y_pred)
    g = np.asarray(["(none)" if v is None or v == "" else str(v) for v in groups])
    if not (len(y) == len(p) == len(g)):
        raise ValueError(f"y_true, y_pred and groups must be as long; got {len(y)}, {len(p)}, {len(g)}")
    c = _clusters(clusters, len(y))
    fn = {"accuracy": _acc, "uar": _uar}[metric]
    per = {}
    for name in sorted(set(g.tolist())):
        m = g == name
        yi, pi = y[m], p[m]
        row = {metric: fn(yi, pi), "n": int(len(yi))}
        _interval(lambda ix: fn(yi[ix], pi[ix]), len(yi), None if c is None else c[m], n_boot, seed, row)
        per[name] = row
    return _resampled(_summary(per, metric, True, len(per)), c)


def group_values(values: Sequence[float], groups: Sequence, name: str = "value", higher_is_better: bool = False,
                 n_boot: int = N_BOOT, seed: int = 0, clusters: Sequence | None = None,
                 denominators: Sequence[float] | None = None) -> dict:
    """Per-group mean of per-item values (EER trial errors ...), with bootstrap intervals over the items; lower is
    better unless said otherwise. With denominators, a ratio of sums instead: sum(values) / sum(denominators) (word
    errors over reference words: the group's WER as jiwer and sclite count it), resampled alike."""
    v = np.asarray(values, dtype=np.float64)
    d = np.ones_like(v) if denominators is None else np.asarray(denominators, dtype=np.float64)
    g = np.asarray(["(none)" if x is None or x == "" else str(x) for x in groups])
    if not (len(v) == len(g) == len(d)):
        raise ValueError(f"values, groups and denominators must be as long; got {len(v)}, {len(g)} and {len(d)}")
    c = _clusters(clusters, len(v))
    per = {}
    for gname in sorted(set(g.tolist())):
        m = g == gname
        vi, di = v[m], d[m]
        ratio = lambda ix, vi=vi, di=di: float(vi[ix].sum() / max(di[ix].sum(), 1e-12))  # noqa: E731
        row = {name: ratio(slice(None)), "n": int(len(vi))}
        _interval(ratio, len(vi), None if c is None else c[m], n_boot, seed, row)
        per[gname] = row
    return _resampled(_summary(per, name, higher_is_better, len(per)), c)


def _resampled(out: dict, clusters) -> dict:
    out["resampled"] = "items" if clusters is None else "clusters"
    if clusters is not None and out["groups"] >= 2:
        out.pop("too_small", None)
        out.pop("note", None)
        lone = [g for g, r in out["per_group"].items() if r["clusters"] < 2]
        if lone:
            out["one_cluster"] = lone
            out["note"] = f"{len(lone)} group(s) with one cluster: point values only, no interval"
    return out


def wer_by_group(errors: Sequence[int], words: Sequence[int], groups: Sequence, column: str,
                 speakers: Sequence | None = None, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """WER per group of one column (word errors / reference words of each utterance, from
    evaluation.transcripts.utterance_errors) with 95% intervals that resample whole speakers within each group
    (the utterances of one speaker are not independent), the worst group, and the gap and ratio to the best."""
    out = group_values(errors, groups, "wer", False, n_boot, seed, speakers, denominators=words)
    names = ["(none)" if x is None or x == "" else str(x) for x in groups]
    for gname, row in out["per_group"].items():
        row["words"] = int(sum(w for w, x in zip(words, names) if x == gname))
    return {"column": column, "wer": out}


def fairness_report(y_true, y_pred, groups: Sequence, column: str, n_boot: int = N_BOOT, seed: int = 0,
                    clusters: Sequence | None = None) -> dict:
    """Accuracy and UAR per group of one column, as trust.json holds them (cluster bootstrap given clusters)."""
    return {"column": column,
            "accuracy": group_metrics(y_true, y_pred, groups, "accuracy", n_boot, seed, clusters),
            "uar": group_metrics(y_true, y_pred, groups, "uar", n_boot, seed, clusters)}

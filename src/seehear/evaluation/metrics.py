"""Classification metrics as a plain, JSON-serialisable dict, plus terminal and predict formatting.

scikit-learn does the counting; this module only adds calibration (ECE, which sklearn lacks), per-group
accuracy, and conversion to plain Python types so the dict can go straight into metrics.json.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

ECE_BINS = 15


def _check_inputs(y_true, probs, labels) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be [N, K] with N = len(y_true) = {y.shape[0]}; got shape {p.shape}")
    if p.shape[1] != len(labels):
        raise ValueError(f"probs has {p.shape[1]} columns but there are {len(labels)} labels")
    if y.size == 0:
        raise ValueError("no examples to evaluate")
    if y.min() < 0 or y.max() >= len(labels):
        raise ValueError(f"y_true holds class indices outside 0..{len(labels) - 1}")
    sums = p.sum(axis=1, keepdims=True)
    if (p < 0).any() or np.abs(sums - 1.0).max() > 1e-3:
        raise ValueError("probs rows must be probabilities summing to 1 (apply softmax to logits first)")
    # float32 softmax rows drift ~1e-7 from 1, which makes sklearn's log_loss warn; renormalise in float64
    return y, p / sums


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> list[dict]:
    """Equal-width confidence bins (lo, hi], each {lo, hi, count, accuracy, confidence}; shared with the plot."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins so confidence 1.0 lands in the top bin; confidence 0 (impossible for a max) in the first
    idx = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        out.append({
            "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
            "accuracy": float(correct[mask].mean()) if n else 0.0,
            "confidence": float(confidence[mask].mean()) if n else 0.0,
        })
    return out


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Count-weighted mean |accuracy - confidence| over bins of top-1 confidence."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true).reshape(-1)
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    bins = calibration_bins(conf, correct, n_bins)
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / len(y))


def compute_metrics(y_true, probs, labels: Sequence[str], groups: Sequence | None = None) -> dict:
    """All headline metrics for one split. See the module docstring for why it is a plain dict."""
    labels = [str(x) for x in labels]
    y, p = _check_inputs(y_true, probs, labels)
    k = len(labels)
    classes = list(range(k))
    pred = p.argmax(axis=1)

    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=classes, zero_division=0)
    with warnings.catch_warnings():
        # sklearn warns when a predicted class never occurs in y_true; UAR is still well defined (mean recall
        # over the classes that do occur), so the warning is noise in a small test split.
        warnings.simplefilter("ignore")
        uar = balanced_accuracy_score(y, pred)
    m: dict = {
        "n": int(y.size),
        "labels": labels,
        "accuracy": float((pred == y).mean()),
        # macro over classes seen in y_true or predictions (sklearn's default), so a class absent from a
        # small test split does not drag the average down with a meaningless 0.
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(uar),
        "per_class": {
            lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                  "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": confusion_matrix(y, pred, labels=classes).astype(int).tolist(),
        "ece": expected_calibration_error(p, y),
        "nll": float(log_loss(y, p, labels=classes)),
    }
    if k > 5:
        m["top5_accuracy"] = float(top_k_accuracy_score(y, p, k=5, labels=classes))
    if groups is not None:
        g = np.asarray(["" if x is None else str(x) for x in groups])
        if g.shape[0] != y.shape[0]:
            raise ValueError(f"groups has {g.shape[0]} entries for {y.shape[0]} examples")
        per_group = {}
        for name in sorted(set(g.tolist())):
            mask = g == name
            per_group[name] = {"accuracy": float((pred[mask] == y[mask]).mean()), "n": int(mask.sum())}
        m["per_group"] = per_group
        worst = min(per_group, key=lambda name: (per_group[name]["accuracy"], -per_group[name]["n"]))
        m["worst_group"] = {"group": worst, **per_group[worst]}
    return m


def format_metrics(m: dict) -> str:
    """A compact table for the terminal: headline numbers, then one line per class (or the task's own summary)."""
    if "wer" in m:
        from seehear.evaluation.transcripts import format_transcript_metrics

        return format_transcript_metrics(m)
    if "eer" in m:
        return (f"EER {m['eer']:.2%}   minDCF {m.get('min_dcf', float('nan')):.3f}   threshold "
                f"{m.get('threshold', float('nan')):.3f}   ({m.get('n_trials', '?')} trials among "
                f"{m.get('n_speakers', '?')} unseen speakers)")
    head = [f"accuracy {m['accuracy']:.2%}   macro-F1 {m['macro_f1']:.3f}   UAR {m['balanced_accuracy']:.2%}"]
    extra = []
    if "top5_accuracy" in m:
        extra.append(f"top-5 {m['top5_accuracy']:.2%}")
    for key, name in (("accuracy_image_only", "image alone"), ("accuracy_audio_only", "audio alone")):
        if key in m:  # audio-image runs
            extra.append(f"{name} {m[key]:.2%}")
    if "ece" in m:
        extra.append(f"ECE {m['ece']:.3f}")
    if "n" in m:
        extra.append(f"n={m['n']}")
    if "worst_group" in m:
        w = m["worst_group"]
        extra.append(f"worst group {w['group']!r} {w['accuracy']:.2%} (n={w['n']})")
    if extra:
        head.append("   ".join(extra))
    per_class = m.get("per_class", {})
    if per_class:
        width = min(max(len("class"), *(len(lab) for lab in per_class)), 30)
        head.append(f"{'class':<{width}}  precision  recall      f1  support")
        for lab, c in per_class.items():
            name = lab if len(lab) <= width else lab[: width - 1] + "…"
            head.append(f"{name:<{width}}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:6.3f}"
                        f"  {c['support']:7d}")
    return "\n".join(head)


def predictions_table(keys: Sequence[str], probs, labels: Sequence[str], k: int = 3) -> list[dict]:
    """One row per input for `predict`: {file, label, probability, top: [{label, probability}, ...]}."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(keys) or p.shape[1] != len(labels):
        raise ValueError(f"probs shape {p.shape} does not match {len(keys)} files x {len(labels)} labels")
    k = max(1, min(k, len(labels)))
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    rows = []
    for key, row, top in zip(keys, p, order):
        best = [{"label": str(labels[j]), "probability": float(row[j])} for j in top]
        rows.append({"file": str(key), "label": best[0]["label"], "probability": best[0]["probability"],
                     "top": best})
    return rows

"""Suspected label errors: cleanlab's confident learning (find_label_issues) on out-of-sample probabilities —
here the test split's, which the model never trained on. Where confident learning has too little to estimate
its per-class thresholds from (a class without examples, fewer than MIN_PER_CLASS of some class) or cleanlab
fails, the ranking falls back to self-confidence: the lowest probability given to the stated label among the
examples the model gets wrong."""
from __future__ import annotations

import numpy as np

MAX_LISTED = 24
MIN_PER_CLASS = 5


def find_issues(y: np.ndarray, probs: np.ndarray, max_listed: int = MAX_LISTED) -> tuple[list[int], str]:
    """Indices of suspected label errors, most suspicious first, and which method found them."""
    y, probs = np.asarray(y, dtype=np.int64), np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(1, keepdims=True)
    counts = np.bincount(y, minlength=probs.shape[1])
    idx = None
    if counts.min() >= MIN_PER_CLASS:
        method = "cleanlab.find_label_issues (confident learning), ranked by self-confidence"
        try:
            from cleanlab.filter import find_label_issues

            idx = [int(i) for i in find_label_issues(labels=y, pred_probs=probs,
                                                     return_indices_ranked_by="self_confidence")]
        except Exception as e:  # the simple ranking still answers
            method = f"self-confidence ranking (cleanlab failed: {type(e).__name__}: {str(e)[:80]})"
    else:
        method = f"self-confidence ranking (a class has fewer than {MIN_PER_CLASS} examples: too few for cleanlab)"
    if idx is None:
        self_conf = probs[np.arange(len(y)), y]
        wrong = np.flatnonzero(probs.argmax(1) != y)
        idx = [int(i) for i in wrong[np.argsort(self_conf[wrong], kind="stable")]]
    return idx[:max_listed], method


def label_issue_rows(keys, y, probs, labels, max_listed: int = MAX_LISTED) -> dict:
    idx, method = find_issues(y, probs, max_listed)
    probs = np.asarray(probs)
    rows = [{"index": i, "file": str(keys[i]), "given": labels[int(y[i])], "predicted": labels[int(probs[i].argmax())],
             "p_given": round(float(probs[i, int(y[i])]), 4), "p_predicted": round(float(probs[i].max()), 4)}
            for i in idx]
    return {"method": method, "n_checked": int(len(y)), "listed": rows}

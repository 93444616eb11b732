"""Speaker-verification metrics: equal error rate, minimum detection cost, and trial lists.

A trial is a pair of utterances with a score (cosine of their embeddings) and a truth: same speaker (target) or not
(non-target). EER is the error rate where false acceptances equal false rejections. minDCF is the NIST SRE detection
cost C = C_miss * P_miss * p_target + C_fa * P_fa * (1 - p_target), minimised over the threshold and normalised by
the cost of the best trivial system, min(C_miss * p_target, C_fa * (1 - p_target)) — as NIST SRE and SpeechBrain
report it (p_target = 0.01, C_miss = C_fa = 1 by default).
"""
from __future__ import annotations

import numpy as np

from seehear.errors import DataError


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    if not y.any() or y.all():
        raise DataError("verification needs both same-speaker and different-speaker trials "
                        f"(got {int(y.sum())} same, {int((~y).sum())} different): use at least two speakers with "
                        f"two or more utterances each")
    return s, y


def _rates(s: np.ndarray, y: np.ndarray):
    """False-acceptance and miss rates at every distinct threshold (accept when score >= threshold)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return fpr, 1.0 - tpr, thr


def eer(scores, labels) -> tuple[float, float]:
    """(equal error rate in [0, 1], the score threshold at which it occurs)."""
    s, y = _check(scores, labels)
    fpr, fnr, thr = _rates(s, y)
    # fpr rises and fnr falls along the curve; the crossing lies between index i-1 and i: interpolate linearly
    if not (s[y].min() <= s[~y].max()):  # perfectly separated: the threshold midway between the two sides
        return 0.0, float((s[y].min() + s[~y].max()) / 2)
    i = int(np.argmax(fnr <= fpr))
    if i == 0:
        return float((fpr[0] + fnr[0]) / 2), float(thr[0] if np.isfinite(thr[0]) else s.max())
    d0, d1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]  # d0 < 0 <= d1
    w = d0 / (d0 - d1) if d1 != d0 else 0.0
    rate = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    t_hi = thr[i - 1] if np.isfinite(thr[i - 1]) else s.max()
    threshold = t_hi + w * (thr[i] - t_hi)
    return float(rate), float(threshold)


def min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """(normalised minimum detection cost, the threshold that reaches it)."""
    s, y = _check(scores, labels)
    fpr, fnr, thr = _rates(s, y)
    # include "accept nothing" (fnr=1, fpr=0), which roc_curve gives as its first point (threshold +inf)
    cost = c_miss * fnr * p_target + c_fa * fpr * (1.0 - p_target)
    i = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    t = thr[i] if np.isfinite(thr[i]) else float(np.nextafter(s.max(), np.inf))
    return float(cost[i] / norm), float(t)


def make_trials(speakers, *, max_nontarget: int | None = None, nontarget_ratio: float | None = None,
                seed: int = 0) -> np.ndarray:
    """Trials from one speaker name per utterance: int array [N, 3] of (i, j, same) with i < j.

    Every same-speaker pair is a trial; different-speaker pairs are all of them, or a random sample (fixed seed) of
    `max_nontarget` pairs, or of `nontarget_ratio` times the number of same-speaker pairs."""
    spk = np.asarray([str(s) for s in speakers])
    n = len(spk)
    i, j = np.triu_indices(n, k=1)
    same = spk[i] == spk[j]
    tgt = np.stack([i[same], j[same], np.ones(same.sum(), dtype=np.int64)], axis=1)
    ni, nj = i[~same], j[~same]
    cap = max_nontarget
    if nontarget_ratio is not None:
        cap = min(cap if cap is not None else len(ni), int(round(nontarget_ratio * len(tgt))))
    if cap is not None and cap < len(ni):
        pick = np.sort(np.random.default_rng(seed).choice(len(ni), size=cap, replace=False))
        ni, nj = ni[pick], nj[pick]
    non = np.stack([ni, nj, np.zeros(len(ni), dtype=np.int64)], axis=1)
    return np.concatenate([tgt, non]).astype(np.int64)


def cosine_scores(emb: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Cosine similarity of the two utterances of every trial."""
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return np.einsum("nd,nd->n", e[trials[:, 0]], e[trials[:, 1]])


def verification_metrics(emb: np.ndarray, speakers, *, p_target: float = 0.01, **trial_kwargs) -> dict:
    """EER, minDCF and the EER threshold of cosine scoring over the trials among `speakers` (one per row of emb)."""
    trials = make_trials(speakers, **trial_kwargs)
    scores = cosine_scores(emb, trials)
    rate, thr = eer(scores, trials[:, 2])
    dcf, dcf_thr = min_dcf(scores, trials[:, 2], p_target=p_target)
    tgt = trials[:, 2] == 1
    return {"eer": round(rate, 5), "min_dcf": round(dcf, 5), "threshold": round(thr, 5),
            "min_dcf_threshold": round(dcf_thr, 5), "p_target": p_target, "n_trials": int(len(trials)),
            "n_target": int(tgt.sum()), "n_nontarget": int((~tgt).sum()),
            "n_speakers": len(set(map(str, speakers))), "n_utterances": int(len(emb)),
            "mean_target_score": round(float(scores[tgt].mean()), 4),
            "mean_nontarget_score": round(float(scores[~tgt].mean()), 4)}

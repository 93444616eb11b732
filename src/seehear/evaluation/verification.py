"""Speaker-verification metrics: equal error rate, minimum detection cost, and trial lists.

A trial is a pair of utterances with a score (cosine of their embeddings) and a truth: same speaker (target) or not
(non-target). EER is the error rate where false acceptances equal false rejections. minDCF is the NIST SRE detection
cost C = C_miss * P_miss * p_target + C_fa * P_fa * (1 - p_target), minimised over the threshold and normalised by
the cost of the best trivial system, min(C_miss * p_target, C_fa * (1 - p_target)) — as NIST SRE and SpeechBrain
report it (p_target = 0.01, C_miss = C_fa = 1 by default). group_eer gives the EER of each group of speakers
(fairness), with intervals from a bootstrap over speakers, since one speaker's trials are not independent.
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


def _rates(s: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None):
    """False-acceptance and miss rates at every distinct threshold (accept when score >= threshold); weights count
    a trial that many times (a bootstrap's repeated speakers)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, s, sample_weight=weights, drop_intermediate=False)
    return fpr, 1.0 - tpr, thr


def eer(scores, labels, weights=None) -> tuple[float, float]:
    """(equal error rate in [0, 1], the score threshold at which it occurs); weights: a count per trial."""
    s, y = _check(scores, labels)
    fpr, fnr, thr = _rates(s, y, None if weights is None else np.asarray(weights, dtype=np.float64).ravel())
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


def _pair(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major index k of the upper triangle (i < j) of an n x n matrix -> (i, j), without building it."""
    k = k.astype(np.int64)
    i = n - 2 - np.floor(np.sqrt(-8.0 * k + 4.0 * n * (n - 1) - 7) / 2.0 - 0.5).astype(np.int64)
    j = k + i + 1 - n * (n - 1) // 2 + (n - i) * ((n - i) - 1) // 2
    return i, j


def make_trials(speakers, *, max_nontarget: int | None = None, nontarget_ratio: float | None = None,
                seed: int = 0) -> np.ndarray:
    """Trials from one speaker name per utterance: int array [N, 3] of (i, j, same) with i < j, sorted.

    Every same-speaker pair is a trial; different-speaker pairs are all of them, or a random sample (fixed seed) of
    `max_nontarget` pairs, or of `nontarget_ratio` times the number of same-speaker pairs. A sample is drawn from
    pair numbers directly, so memory follows the trials kept, not the n^2 / 2 pairs there are."""
    spk = np.asarray([str(s) for s in speakers])
    n = len(spk)
    groups: dict[str, list[int]] = {}
    for idx, name in enumerate(spk):
        groups.setdefault(name, []).append(idx)
    tgt = [(a, b) for members in groups.values() for x, a in enumerate(members) for b in members[x + 1:]]
    tgt_arr = np.asarray(tgt, dtype=np.int64).reshape(-1, 2)
    n_non = n * (n - 1) // 2 - len(tgt_arr)
    cap = max_nontarget
    if nontarget_ratio is not None:
        cap = min(cap if cap is not None else n_non, int(round(nontarget_ratio * len(tgt_arr))))
    if cap is None or cap >= n_non:
        i, j = np.triu_indices(n, k=1)  # all of them were asked for
        keep = spk[i] != spk[j]
        ni, nj = i[keep], j[keep]
    else:
        rng = np.random.default_rng(seed)
        chosen: set[int] = set()
        total = n * (n - 1) // 2
        while len(chosen) < cap:  # draw pair numbers, keep the different-speaker ones, until there are enough
            k = rng.integers(0, total, size=2 * (cap - len(chosen)) + 16)
            a, b = _pair(k, n)
            chosen.update(int(x) for x in k[spk[a] != spk[b]])
        picked = np.sort(np.fromiter(chosen, dtype=np.int64))
        picked = np.sort(rng.choice(picked, size=cap, replace=False)) if len(picked) > cap else picked
        ni, nj = _pair(picked, n)
    out = np.concatenate([np.column_stack([tgt_arr, np.ones(len(tgt_arr), dtype=np.int64)]),
                          np.column_stack([ni, nj, np.zeros(len(ni), dtype=np.int64)])]).astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))] if len(out) else out.reshape(0, 3)


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


MIN_GROUP_SPEAKERS = 5  # fewer speakers in a group: its EER is given, with no interval


def _speaker_bootstrap(scores, y, a, b, n_speakers: int, n_boot: int, seed: int) -> list[float]:
    """EERs over resamples of the speakers (with replacement): a trial between speakers a and b counts
    count(a) x count(b) times, a same-speaker trial count(a) times, so a speaker drawn twice weighs twice."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        cnt = np.bincount(rng.integers(0, n_speakers, n_speakers), minlength=n_speakers).astype(np.float64)
        w = np.where(a == b, cnt[a], cnt[a] * cnt[b])
        keep = w > 0
        if y[keep].any() and not y[keep].all():
            out.append(eer(scores[keep], y[keep], w[keep])[0])
    return out


def group_eer(emb: np.ndarray, speakers, groups, *, n_boot: int = 1000, seed: int = 0,
              max_nontarget: int = 50_000) -> dict:
    """EER per group (gender, age group ...): the trials within each group (both utterances from its speakers),
    each with a 95% interval from a bootstrap over the group's speakers; the worst group, the gap to the best
    and the ratio. A group with fewer than two speakers has no trials and says so; one with fewer than
    MIN_GROUP_SPEAKERS gets its EER without an interval."""
    spk = np.asarray([str(s) for s in speakers])
    g = np.asarray(["(none)" if v is None or v == "" else str(v) for v in groups])
    if not (len(spk) == len(g) == len(emb)):
        raise ValueError(f"emb, speakers and groups must be as long; got {len(emb)}, {len(spk)}, {len(g)}")
    per: dict = {}
    for name in sorted(set(g.tolist())):
        m = np.flatnonzero(g == name)
        names = sorted(set(spk[m].tolist()))
        row: dict = {"speakers": len(names), "utterances": int(len(m))}
        per[name] = row
        trials = make_trials(spk[m], max_nontarget=max_nontarget, seed=seed) if len(names) >= 2 else None
        if trials is None or not trials[:, 2].any():
            row["note"] = "fewer than 2 speakers, or no speaker with 2 utterances: no trials"
            continue
        scores, y = cosine_scores(emb[m], trials), trials[:, 2].astype(bool)
        row.update(eer=round(eer(scores, y)[0], 5), n_trials=int(len(trials)))
        if len(names) >= MIN_GROUP_SPEAKERS:
            idx = {n: i for i, n in enumerate(names)}
            who = np.array([idx[s] for s in spk[m]])
            vals = _speaker_bootstrap(scores, y, who[trials[:, 0]], who[trials[:, 1]], len(names), n_boot, seed)
            row["ci95"] = [round(float(np.quantile(vals, q)), 5) for q in (0.025, 0.975)]
        else:
            row["note"] = f"under {MIN_GROUP_SPEAKERS} speakers: no interval"
    out: dict = {"metric": "eer", "per_group": per, "resampled": "speakers", "higher_is_better": False}
    measured = {k: v["eer"] for k, v in per.items() if "eer" in v}
    if len(measured) < 2:
        out["note"] = "fewer than two groups with trials: nothing to compare"
        return out
    worst, best = max(measured, key=measured.get), min(measured, key=measured.get)
    out.update(worst_group=worst, best_group=best, worst=measured[worst], best=measured[best],
               gap=round(measured[worst] - measured[best], 5),
               ratio_to_best=round(measured[worst] / measured[best], 4) if measured[best] else None)
    return out

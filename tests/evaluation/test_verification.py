"""EER, minDCF and trial lists on cases whose answers are known by hand."""
import numpy as np
import pytest

from seehear.errors import DataError
from seehear.evaluation.verification import (cosine_scores, eer, make_trials, min_dcf,
                                             verification_metrics)


def test_perfect_separation():
    scores = [0.9, 0.8, 0.7, 0.2, 0.1, 0.0]
    labels = [1, 1, 1, 0, 0, 0]
    rate, thr = eer(scores, labels)
    assert rate == 0.0 and 0.2 < thr < 0.7  # a threshold between the two sides
    dcf, dthr = min_dcf(scores, labels)
    assert dcf == 0.0
    assert all((s >= dthr) == bool(y) for s, y in zip(scores, labels))


def test_hand_checked_case():
    # targets 0.9 0.8 0.3, non-targets 0.5 0.2 0.1: at threshold 0.5 one false accept (0.5) and one miss (0.3)
    scores = [0.9, 0.8, 0.3, 0.5, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0]
    rate, thr = eer(scores, labels)
    assert rate == pytest.approx(1 / 3) and thr == pytest.approx(0.5)
    # best cost: reject 0.3 (miss 1/3), accept nothing else wrong: 0.01 * 1/3 / min(0.01, 0.99) = 1/3
    dcf, _ = min_dcf(scores, labels)
    assert dcf == pytest.approx(1 / 3)
    # with p_target = 0.5 the same point costs 0.5 * 1/3 / 0.5
    assert min_dcf(scores, labels, p_target=0.5)[0] == pytest.approx(1 / 3)


def test_reversed_scores_are_all_wrong_and_random_near_half():
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=20000), rng.integers(0, 2, 20000)
    assert abs(eer(s, y)[0] - 0.5) < 0.02
    assert min_dcf(s, y)[0] > 0.9  # no better than the trivial system
    with pytest.raises(DataError):
        eer([0.1, 0.2], [1, 1])


def test_trials_and_metrics():
    spk = ["a", "a", "a", "b", "b", "c"]
    t = make_trials(spk)
    assert len(t) == 15 and t[:, 2].sum() == 4  # 3 pairs of a + 1 pair of b
    assert all((spk[i] == spk[j]) == bool(s) for i, j, s in t) and (t[:, 0] < t[:, 1]).all()
    few = make_trials(spk, max_nontarget=5, seed=1)
    assert len(few) == 9 and few[:, 2].sum() == 4
    assert np.array_equal(few, make_trials(spk, max_nontarget=5, seed=1))  # fixed seed: same trials
    assert len(make_trials(spk, nontarget_ratio=1.0)) == 8
    # embeddings: one direction per speaker plus small noise -> perfect verification
    rng = np.random.default_rng(0)
    centre = {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0, 0, 1]}
    emb = np.array([centre[s] for s in spk]) + 0.05 * rng.normal(size=(6, 3))
    assert cosine_scores(emb, t)[t[:, 2] == 1].min() > 0.9
    m = verification_metrics(emb, spk)
    assert m["eer"] == 0.0 and m["min_dcf"] == 0.0 and m["n_trials"] == 15 and m["n_speakers"] == 3


def test_sampled_trials_do_not_build_every_pair():
    """60,000 utterances have 1.8e9 pairs (tens of GB as index arrays); a sample of them must not build them."""
    spk = [f"s{i // 20}" for i in range(60_000)]
    t = make_trials(spk, max_nontarget=50_000, seed=3)
    non = t[t[:, 2] == 0]
    assert len(non) == 50_000 and len({(a, b) for a, b, _ in non}) == 50_000  # distinct pairs
    assert (non[:, 0] < non[:, 1]).all() and all(spk[a] != spk[b] for a, b, _ in non[:2000])
    assert (t[:, 2] == 1).sum() == 3_000 * 190  # every same-speaker pair: 3,000 speakers x C(20, 2)
    assert np.array_equal(t, make_trials(spk, max_nontarget=50_000, seed=3))


def test_weights_count_a_trial_that_many_times():
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=40) + np.repeat([1.0, 0.0], 20), np.repeat([1, 0], 20)
    w = rng.integers(1, 4, size=40)
    assert eer(scores, labels, w)[0] == pytest.approx(eer(np.repeat(scores, w), np.repeat(labels, w))[0])


def _grouped_embeddings(rng, spread: dict, per_group=6, utts=5, dim=16):
    """Speakers of each group: a random direction each, utterances scattered around it by the group's spread."""
    emb, spk, grp = [], [], []
    for g, s in spread.items():
        for k in range(per_group):
            centre = rng.normal(size=dim)
            for _ in range(utts):
                emb.append(centre / np.linalg.norm(centre) + s * rng.normal(size=dim))
                spk.append(f"{g}{k}")
                grp.append(g)
    return np.asarray(emb), spk, grp


def test_group_eer_finds_the_harder_group_with_intervals():
    from seehear.evaluation.verification import group_eer

    emb, spk, grp = _grouped_embeddings(np.random.default_rng(0), {"adult": 0.05, "child": 0.4})
    r = group_eer(emb, spk, grp, n_boot=200)
    a, c = r["per_group"]["adult"], r["per_group"]["child"]
    assert a["eer"] < c["eer"] and r["worst_group"] == "child" and r["best_group"] == "adult"
    assert r["gap"] == pytest.approx(c["eer"] - a["eer"], abs=1e-5)
    assert r["ratio_to_best"] == pytest.approx(c["eer"] / a["eer"], rel=1e-3) if a["eer"] else r["ratio_to_best"] is None
    for row in (a, c):
        lo, hi = row["ci95"]
        assert lo <= row["eer"] <= hi and row["speakers"] == 6 and row["utterances"] == 30
    assert c["ci95"][1] > a["ci95"][0]  # the intervals are real ranges, not points


def test_group_eer_says_when_a_group_cannot_be_measured():
    from seehear.evaluation.verification import group_eer

    emb, spk, grp = _grouped_embeddings(np.random.default_rng(0), {"a": 0.1, "b": 0.1}, per_group=3)
    r = group_eer(np.vstack([emb, emb[:2]]), spk + ["lonely", "lonely"], grp + ["solo", "solo"], n_boot=50)
    assert "no trials" in r["per_group"]["solo"]["note"] and "eer" not in r["per_group"]["solo"]
    assert "no interval" in r["per_group"]["a"]["note"] and "ci95" not in r["per_group"]["a"]
    one = group_eer(emb[:15], spk[:15], grp[:15], n_boot=50)
    assert "nothing to compare" in one["note"] and "gap" not in one

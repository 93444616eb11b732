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


def test_cluster_bootstrap_widens_intervals_when_speakers_move_together():
    # group "f": 4 speakers x 25 utterances, one speaker always wrong; group "m": 4 speakers, all right but one 40%
    y = np.zeros(200, dtype=int)
    pred = np.zeros(200, dtype=int)
    pred[:25] = 1
    pred[100:110] = 1
    groups = ["f"] * 100 + ["m"] * 100
    spk = [f"s{i // 25}" for i in range(200)]
    items = group_metrics(y, pred, groups)
    by_spk = group_metrics(y, pred, groups, clusters=spk)
    assert items["resampled"] == "items" and by_spk["resampled"] == "clusters"
    assert by_spk["per_group"]["f"]["accuracy"] == items["per_group"]["f"]["accuracy"] == 0.75
    assert by_spk["per_group"]["f"]["clusters"] == 4
    w_items = np.diff(items["per_group"]["f"]["ci95"])[0]
    w_spk = np.diff(by_spk["per_group"]["f"]["ci95"])[0]
    assert w_spk > 2 * w_items  # 4 speakers carry far less evidence than 100 independent utterances
    lo, hi = by_spk["per_group"]["f"]["ci95"]
    assert lo <= 0.75 <= hi


def test_cluster_bootstrap_flags_groups_of_one_speaker():
    y = np.zeros(60, dtype=int)
    r = fairness_report(y, y, ["a"] * 30 + ["b"] * 30, column="gender", clusters=["s1"] * 30 + [f"t{i % 3}" for i in range(30)])
    acc = r["accuracy"]
    assert acc["one_cluster"] == ["a"] and "ci95" not in acc["per_group"]["a"] and "ci95" in acc["per_group"]["b"]
    try:
        group_metrics(y, y, ["a"] * 60, clusters=["s"] * 59)
    except ValueError as e:
        assert "clusters" in str(e)
    else:
        raise AssertionError("a clusters list of the wrong length must be refused")


def test_wer_per_group_is_word_weighted_with_speaker_intervals():
    from seehear.evaluation.transcripts import transcript_metrics, utterance_errors
    from seehear.trust.fairness import wer_by_group

    rng = np.random.default_rng(3)
    vocab = "one two three four five six seven eight nine".split()
    refs, hyps, groups, spk = [], [], [], []
    for s in range(7):  # child: 4 speakers, often wrong; adult: 3 speakers, rarely; one "unknown" speaker
        group = "child" if s < 4 else "adult" if s < 6 else "unknown"
        for _ in range(6):
            words = list(rng.choice(vocab, int(rng.integers(1, 6))))
            out = [w if rng.random() > (0.4 if group == "child" else 0.05) else "zero" for w in words]
            refs.append(" ".join(words))
            hyps.append(" ".join(out[: len(out) - (rng.random() < 0.2)]))
            groups.append(group)
            spk.append(f"s{s}")
    errors, words = utterance_errors(refs, hyps)
    r = wer_by_group(errors, words, groups, "age_group", spk)
    w = r["wer"]
    assert r["column"] == "age_group" and w["resampled"] == "clusters" and w["worst_group"] == "child"
    for g in ("child", "adult"):  # the group's WER is jiwer's over its utterances, not a mean of utterance WERs
        ix = [i for i, x in enumerate(groups) if x == g]
        row = w["per_group"][g]
        assert abs(row["wer"] - transcript_metrics([refs[i] for i in ix], [hyps[i] for i in ix])["wer"]) < 1e-12
        assert row["ci95"][0] <= row["wer"] <= row["ci95"][1] and row["clusters"] == (4 if g == "child" else 2)
        assert row["words"] == sum(words[i] for i in ix) and row["n"] == 6 * row["clusters"]
    assert w["one_cluster"] == ["unknown"] and "ci95" not in w["per_group"]["unknown"]  # flagged, point value only
    assert abs(w["gap"] - (w["worst"] - w["best"])) < 1e-12 and w["ratio_to_best"] == w["worst"] / w["best"]
    assert "one group" in wer_by_group(errors, words, ["x"] * len(refs), "gender", spk)["wer"]["note"]

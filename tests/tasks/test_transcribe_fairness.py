"""Fairness for speech to text on espeak-ng sentences: group-balanced sampling by a Kaldi spk2gender column, WER
per gender with speaker-bootstrap intervals in metrics.json and report.html, and the class samplers refused in one
line."""
from __future__ import annotations

import json

import pytest

from seehear.cli import main

TINY = ["train.epochs=1", "train.threads=1", "data.workers=1", "model.name=conformer_ctc_tiny",
        "transcribe.decoder=greedy", "transcribe.tune_decoding=false"]
GENDER = {"en": "m", "en-us": "m", "en-f3": "f"}  # the voices make_spoken_sentences speaks with (speaker = voice)


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """18 training and 9 test sentences by 3 voices, spk2gender beside them: m has 2 speakers, f 1."""
    from seehear.data.synth import make_spoken_sentences

    d = make_spoken_sentences(tmp_path_factory.mktemp("gender") / "d", train=18, test=9, workers=1)
    for split in ("train", "test"):
        (d / split / "spk2gender").write_text("".join(f"{s} {g}\n" for s, g in GENDER.items()))
    return d


@pytest.mark.slow
def test_group_balanced_run_reports_wer_per_gender(voices, tmp_path):
    import seehear

    out = tmp_path / "run"
    r = seehear.train(str(voices), str(out), task="transcribe", progress=False,
                      overrides=[*TINY, "train.sampler=group_balanced", "train.group_by=gender"])
    per = json.loads((out / "meta.json").read_text())["data"]["train_per_group"]
    train = r.meta["data"]["counts"]["train"]
    assert per["column"] == "gender" and set(per["counts"]) == {"f", "m"} and sum(per["counts"].values()) == train
    assert per["counts"]["m"] > per["counts"]["f"]  # the skew the sampler evens out
    f = json.loads((out / "metrics.json").read_text())["test"]["fairness"]
    w = f["wer"]
    assert f["column"] == "gender" and w["resampled"] == "clusters" and set(w["per_group"]) == {"f", "m"}
    m = w["per_group"]["m"]
    assert m["clusters"] == 2 and m["n"] == 6 and m["ci95"][0] <= m["wer"] <= m["ci95"][1]
    assert w["one_cluster"] == ["f"] and "ci95" not in w["per_group"]["f"] and "one cluster" in w["note"]
    assert w["worst_group"] in ("f", "m") and w["gap"] >= 0
    page = (out / "report.html").read_text()
    assert "WER per gender" in page and "95% interval" in page and f"{m['wer']:.1%}" in page and "too few" in page


@pytest.mark.parametrize("setting, words", [
    ("train.sampler=group_class_balanced", "(group, class) pairs"),
    ("train.sampler=balanced", "group_balanced"),
    ("train.sampler=sqrt", "group_balanced"),
    ("train.group_by=gender", "transcribe.fairness_by=gender"),  # a group column with no group sampler
])
def test_class_samplers_are_refused_in_one_line(voices, tmp_path, capsys, setting, words):
    assert main(["train", str(voices), "--out", str(tmp_path / "r"), "--task", "transcribe", "--quiet",
                 "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_a_fairness_column_no_record_has_is_one_line(voices, tmp_path, capsys):
    assert main(["train", str(voices), "--out", str(tmp_path / "r"), "--task", "transcribe", "--quiet",
                 "--set", "transcribe.fairness_by=accent"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "transcribe.fairness_by 'accent'" in err and "gender" in err, err


def test_draw_weights_follow_train_batches_and_the_group_sampler():
    """The weights transcription hands LengthBatches: None (fixed batches) by default, equal ones with
    train.batches=redrawn, 1 / group count whenever the group sampler gave groups (they always redraw)."""
    import torch

    from seehear.config import RunConfig
    from seehear.tasks.transcribe import draw_weights

    groups = torch.tensor([0] * 9 + [1])
    cfg = RunConfig()
    assert cfg.train.batches == "fixed" and draw_weights(cfg, None, 10) is None
    assert draw_weights(cfg, groups, 10)[-1] / draw_weights(cfg, groups, 10)[0] == 9
    cfg = cfg.override(["train.batches=redrawn"])
    w = draw_weights(cfg, None, 10)
    assert w.shape == (10,) and bool((w == w[0]).all())
    assert draw_weights(cfg, groups, 10)[-1] / draw_weights(cfg, groups, 10)[0] == 9  # the groups' weights win

"""Groups by column name, as fairness reports and group-balanced sampling read them: manifest columns, a Kaldi
dir's speaker facts (spk2gender, spk2age), the speaker, the label; a column nobody has is a one-line error."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from seehear.data.groups import column_values, group_counts, group_names
from seehear.data.records import Record
from seehear.data.sources import load_source
from seehear.errors import DataError


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(800, dtype=np.float32), 8000, subtype="PCM_16")


def test_kaldi_speaker_facts_become_columns(tmp_path):
    d = tmp_path / "k"
    for u in ("u1", "u2", "u3"):
        _wav(d / f"{u}.wav")
    (d / "wav.scp").write_text("u1 u1.wav\nu2 u2.wav\nu3 u3.wav\n")
    (d / "text").write_text("u1 yes\nu2 no\nu3 yes\n")
    (d / "utt2spk").write_text("u1 A\nu2 A\nu3 B\n")
    (d / "spk2utt").write_text("A u1 u2\nB u3\n")
    (d / "spk2gender").write_text("A f\nB m\n")
    (d / "spk2age").write_text("A 9\n")  # B's age unknown
    recs = sorted(load_source(d).records, key=lambda r: r.extra["utt"])
    assert [r.extra.get("gender") for r in recs] == ["f", "f", "m"]
    assert [r.extra.get("age") for r in recs] == ["9", "9", None]
    assert set(recs[0].extra) == {"utt", "gender", "age"} and set(recs[2].extra) == {"utt", "gender"}  # not spk2utt
    assert column_values(recs, "gender") == ["f", "f", "m"]
    assert column_values(recs, "speaker") == ["A", "A", "B"]
    assert group_counts(column_values(recs, "age")) == {"(none)": 1, "9": 2}


def test_columns_group_and_label():
    recs = [Record("a", label="x", group="s1", extra={"site": "n"}), Record("b", label="y", extra={"site": ""})]
    assert column_values(recs, "site") == ["n", ""] and group_names(["n", ""]) == ["n", "(none)"]
    assert column_values(recs, "group") == ["s1", None] and column_values(recs, "label") == ["x", "y"]


def test_unknown_column_names_the_option_and_the_columns():
    recs = [Record("a", label="x", group="s1", extra={"site": "n"})]
    with pytest.raises(DataError) as e:
        column_values(recs, "gender", "train.group_by")
    msg = str(e.value)
    assert msg.startswith("train.group_by 'gender': no example has that column") and "group, site" in msg
    assert "\n" not in msg

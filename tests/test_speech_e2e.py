"""Spoken words made by espeak-ng, labels and speakers from file names, whole voices held out: the demo's path."""
import json

import pytest

import seehear
from seehear.data.synth import make_spoken_words

pytestmark = pytest.mark.slow
PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_"


def test_words_with_voices_held_out(tmp_path):
    voices = ("en", "en-us", "en-gb-scotland", "en+f3", "en-029")
    data = make_spoken_words(tmp_path / "words", ["yes", "no", "stop"], voices=voices, speeds=(140, 180))
    r = seehear.train(data, tmp_path / "run", label_pattern=PATTERN, split_by="speaker", model="tcresnet8",
                      overrides=["train.epochs=3", "train.threads=1", "train.batch_size=8", "data.workers=1"],
                      progress=False)
    split = json.loads((r.run_dir / "split.json").read_text())
    speaker = lambda key: key.rsplit("/", 1)[1].split("_")[1]  # noqa: E731
    train_voices = {speaker(k) for k in split["train"]}
    test_voices = {speaker(k) for k in split["test"]}
    assert test_voices and not (train_voices & test_voices), "a voice leaked between train and test"
    assert set(r.metrics["per_group"]) == test_voices
    assert r.meta["input"]["sample_rate"] == 16000 and r.meta["labels"] == ["no", "stop", "yes"]
    rows = seehear.predict(r.run_dir, data)
    assert len(rows) == len(list(data.glob("*.wav"))) and all(row["label"] in r.meta["labels"] for row in rows)

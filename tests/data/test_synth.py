"""Generated datasets: right layout for load_source, deterministic, and actually carrying the class signal."""
import hashlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from seehear.data import synth
from seehear.data.sources import load_source
from seehear.errors import DataError, MissingToolError

WORD_PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_"


def test_digit_images(tmp_path):
    out = synth.make_digit_images(tmp_path / "digits", per_class=3)
    src = load_source(out)
    assert src.labels == [str(d) for d in range(10)] and len(src.records) == 30
    im = Image.open(src.records[0].path)
    assert im.size == (32, 32) and im.mode == "L" and np.asarray(im).max() > 100


def test_shape_images_deterministic_and_distinct(tmp_path):
    a = synth.make_shape_images(tmp_path / "a", classes=4, per_class=3, size=24, seed=7)
    b = synth.make_shape_images(tmp_path / "b", classes=4, per_class=3, size=24, seed=7)
    src = load_source(a)
    assert src.labels == sorted(synth.SHAPES[:4]) and len(src.records) == 12
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    arrays = [np.asarray(Image.open(r.path)) for r in src.records]
    assert arrays[0].shape == (24, 24, 3) and len({x.tobytes() for x in arrays}) == 12
    with pytest.raises(DataError):
        synth.make_shape_images(tmp_path / "c", classes=1)


def test_tones_carry_their_pitch(tmp_path):
    out = synth.make_tones(tmp_path / "t", classes=3, per_class=4, sample_rate=8000, seconds=0.5)
    src = load_source(out)
    assert src.modality == "audio" and len(src.labels) == 3
    for r in src.records:
        x, sr = sf.read(r.path)
        assert sr == 8000 and len(x) == 4000
        peak = np.argmax(np.abs(np.fft.rfft(x))) * sr / len(x)  # the strongest frequency is the class's pitch
        assert abs(peak - float(r.label[:-2])) / float(r.label[:-2]) < 0.05


def test_spoken_words_layout_and_pattern(tmp_path):
    out = synth.make_spoken_words(tmp_path / "w", ["yes", "no"], voices=("en", "en+f3"), speeds=(160,), pitches=(50,))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["no_en+f3_160_50.wav", "no_en_160_50.wav", "yes_en+f3_160_50.wav", "yes_en_160_50.wav"]
    src = load_source(out, label_pattern=WORD_PATTERN)
    assert src.labels == ["no", "yes"] and sorted({r.group for r in src.records}) == ["en", "en+f3"]
    x, sr = sf.read(out / "yes_en_160_50.wav")
    assert sr == 22050 and 0.2 < len(x) / sr < 2 and np.abs(x).max() > 0.05
    before = (out / "yes_en_160_50.wav").stat().st_mtime_ns
    synth.make_spoken_words(out, ["yes"], voices=("en",), speeds=(160,), pitches=(50,))
    assert (out / "yes_en_160_50.wav").stat().st_mtime_ns == before  # existing files are kept


def test_default_voices_exist_and_differ(tmp_path):
    out = synth.make_spoken_words(tmp_path, ["seven"], speeds=(160,), pitches=(50,))
    digests = {hashlib.blake2b(f.read_bytes()).hexdigest() for f in out.glob("*.wav")}
    assert len(digests) == len(synth.VOICES)


def test_spoken_words_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="lowercase"):
        synth.make_spoken_words(tmp_path, ["Yes"])
    with pytest.raises(DataError, match="espeak-ng failed"):
        synth.make_spoken_words(tmp_path, ["yes"], voices=("zzqvoice",), speeds=(160,), pitches=(50,))
    assert not list(tmp_path.iterdir())  # a failed voice leaves no file behind
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="apt-get install -y espeak-ng"):
        synth.require_espeak()

"""Audio-image pairs: the manifest, decoding both sides once, and a pair with a missing or damaged side skipped
and listed with the side that failed (nothing else lost)."""
import pytest
import torch

from seehear.config import RunConfig
from seehear.data.pairs import PairRecord, decode_pairs, is_pairs_manifest, load_pairs
from seehear.data.sources import load_source
from seehear.data.synth import make_pairs
from seehear.errors import DataError


@pytest.fixture
def pairs(tmp_path):
    return make_pairs(tmp_path / "pairs", classes=3, per_class=4, seconds=0.25, seed=1)


def _cfg():
    cfg = RunConfig()
    cfg.image.size, cfg.audio.clip_seconds = 16, 0.25
    return cfg


def test_manifest_lists_pairs_with_labels_and_columns(pairs):
    src = load_pairs(pairs)
    assert src.modality == "audio-image" and src.kind == "pairs" and len(src.records) == 12
    assert src.labels == ["circle", "square", "triangle"]
    r = src.records[0]
    assert isinstance(r, PairRecord) and r.path.endswith(".png") and r.audio.endswith(".wav")
    assert r.key == f"{r.path}+{r.audio}" and r.extra["condition"] in ("clean", "image_noise", "audio_noise")
    assert is_pairs_manifest(pairs) and load_source(pairs, modality="audio-image").records[0].key == r.key
    with pytest.raises(DataError, match="--modality audio-image"):
        load_source(pairs)  # read as a single-modality manifest: says what it is


def test_synthetic_pairs_have_both_kinds_of_uninformative_example(tmp_path):
    src = load_pairs(make_pairs(tmp_path / "p", classes=3, per_class=30, seconds=0.25))
    conds = [r.extra["condition"] for r in src.records]
    assert {"clean", "image_noise", "audio_noise"} == set(conds) and conds.count("clean") > len(conds) // 4


def test_decoded_once_into_the_caches_tensors(pairs):
    d = decode_pairs(load_pairs(pairs).records, _cfg(), workers=1, progress=False)
    assert d.image.dtype == torch.uint8 and d.image.shape == (12, 3, 16, 16)
    assert d.audio.dtype == torch.int16 and d.audio.shape == (12, 4000)
    assert d.keep == list(range(12)) and d.skipped == [] and d.audio.abs().max() > 1000


def test_missing_or_damaged_side_skipped_with_its_reason(pairs):
    src = load_pairs(pairs)
    gone, broken = src.records[2], src.records[5]
    (pairs.parent / "audio" / gone.audio.rsplit("/", 1)[1]).unlink()
    (pairs.parent / "images" / broken.path.rsplit("/", 1)[1]).write_bytes(b"not a png")
    d = decode_pairs(src.records, _cfg(), workers=1, progress=False)
    assert d.keep == [i for i in range(12) if i not in (2, 5)] and len(d.image) == len(d.audio) == 10
    why = dict(d.skipped)
    assert why[gone.key].startswith("audio: ") and "not found" in why[gone.key]
    assert why[broken.key].startswith("image: ")


def test_bad_manifests_are_one_line_errors(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("image,label\na.png,x\n")
    with pytest.raises(DataError, match="no audio column"):
        load_pairs(m)
    assert not is_pairs_manifest(m)
    m.write_text("image,audio,label\na.png,b.txt,x\n")
    with pytest.raises(DataError, match="audio"):
        load_pairs(m)
    with pytest.raises(DataError, match="manifest"):
        load_pairs(tmp_path)

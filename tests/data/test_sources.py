"""load_source / list_files: every input kind, and every user mistake as a one-line DataError."""
import gzip
import json
import struct

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from seehear.data.sources import list_files, load_source, require_trainable
from seehear.errors import DataError


def png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)
    return path


def wav(path, sr=8000, n=800):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(n, np.float32), sr)
    return path


def write_idx(path, arr):
    """IDX as MNIST ships it: magic (0, 0, dtype 0x08, ndim), big-endian dims, then the bytes."""
    arr = np.asarray(arr, np.uint8)
    data = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


# --- folders ------------------------------------------------------------------------------------------------------

def test_folder_of_images_recursive_hidden_ignored(tmp_path):
    png(tmp_path / "cat" / "a.png")
    png(tmp_path / "cat" / "sub" / "b.PNG")  # below the class folder, upper-case extension
    png(tmp_path / "dog" / "c.png")
    png(tmp_path / "dog" / ".hidden.png")
    png(tmp_path / ".cache" / "x.png")
    (tmp_path / "dog" / "notes.txt").write_text("not data")
    src = load_source(tmp_path)
    assert (src.kind, src.modality, src.labels) == ("folder", "image", ["cat", "dog"])
    assert sorted(r.path.split("/")[-1] for r in src.records) == ["a.png", "b.PNG", "c.png"]
    assert require_trainable(src) is src


def test_folder_of_audio(tmp_path):
    for c in ("yes", "no"):
        wav(tmp_path / c / f"{c}1.wav")
        wav(tmp_path / c / f"{c}2.flac")
    src = load_source(tmp_path)
    assert src.modality == "audio" and len(src.records) == 4 and src.labels == ["no", "yes"]


def test_mixed_modalities_error_or_filtered(tmp_path):
    png(tmp_path / "a" / "x.png")
    wav(tmp_path / "b" / "y.wav")
    with pytest.raises(DataError, match="mixes 1 image and 1 audio"):
        load_source(tmp_path)
    src = load_source(tmp_path, modality="audio")
    assert [r.label for r in src.records] == ["b"] and "ignored 1" in src.problems[0]


def test_missing_empty_and_no_media(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        load_source(tmp_path / "empty")
    (tmp_path / "txt" / "a").mkdir(parents=True)
    (tmp_path / "txt" / "a" / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="no image or audio files"):
        load_source(tmp_path / "txt")


def test_one_class_and_unlabeled_are_listed_but_not_trainable(tmp_path):
    png(tmp_path / "one" / "only" / "a.png")
    src = load_source(tmp_path / "one")
    assert src.labels == ["only"]
    with pytest.raises(DataError, match="only one class"):
        require_trainable(src)
    png(tmp_path / "flat" / "a.png")
    flat = load_source(tmp_path / "flat")
    assert flat.kind == "files" and flat.records[0].label is None
    with pytest.raises(DataError, match="no labels"):
        require_trainable(flat)


# --- manifests ----------------------------------------------------------------------------------------------------

def test_csv_manifest(tmp_path):
    a, b = wav(tmp_path / "audio" / "a.wav"), wav(tmp_path / "audio" / "b.wav")
    (tmp_path / "m.csv").write_text(
        "path,label,speaker,split,transcript,mic\n"
        "audio/a.wav,yes,s1,val,yes please,close\n"
        f"{b},no,s2,train,,far\n"
        "audio/missing.wav,no,s3,train,,far\n"
        "audio/a.wav,,s1,train,,far\n")
    src = load_source(tmp_path / "m.csv")
    assert src.kind == "manifest" and src.modality == "audio"
    r0, r1 = src.records
    assert (r0.path, r0.label, r0.group, r0.split, r0.transcript) == (str(a), "yes", "s1", "valid", "yes please")
    assert r0.extra == {"mic": "close"} and r1.path == str(b) and r1.transcript is None
    assert len(src.problems) == 2 and "missing.wav not found" in src.problems[0] and "empty label" in src.problems[1]


def test_jsonl_manifest(tmp_path):
    png(tmp_path / "i" / "a.png")
    png(tmp_path / "i" / "b.png")
    rows = [json.dumps({"path": "i/a.png", "label": 3, "group": "g1"}), "{not json",
            json.dumps({"path": "i/b.png", "label": "4", "angle": 90})]
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")
    src = load_source(tmp_path / "m.jsonl")
    assert [r.label for r in src.records] == ["3", "4"] and src.records[0].group == "g1"
    assert src.records[1].extra == {"angle": 90}
    assert len(src.problems) == 1 and "line 2" in src.problems[0] and "JSON" in src.problems[0]


def test_semicolon_csv_and_lazy_package_exports(tmp_path):
    png(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("Path;Label;Group\na.png;x;g7\n")
    r = load_source(tmp_path / "m.csv").records[0]
    assert (r.label, r.group, r.extra) == ("x", "g7", {})
    import seehear.data as d
    assert d.make_splits.__module__ == "seehear.data.splits" and d.decode_all.__module__ == "seehear.data.cache"


def test_manifest_without_label_column(tmp_path):
    png(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,speaker\na.png,s1\n")
    with pytest.raises(DataError, match="no label column"):
        load_source(tmp_path / "m.csv")


# --- Kaldi --------------------------------------------------------------------------------------------------------

def test_kaldi_paths_relative_to_parent_and_split_folders(tmp_path):
    root = tmp_path / "speechocean"
    wav(root / "WAVE" / "SPK1" / "u1.wav")
    wav(root / "WAVE" / "SPK2" / "u2.wav")
    wav(root / "test" / "local.wav")  # relative to the Kaldi dir itself
    for part, lines in (("train", ["u1 WAVE/SPK1/u1.wav", "u3 sox x.wav -t wav - |"]),
                        ("test", ["u2 WAVE/SPK2/u2.wav", "u4 local.wav"])):
        d = root / part
        d.mkdir(exist_ok=True)
        (d / "wav.scp").write_text("\n".join(lines) + "\n")
        (d / "text").write_text("u1 yes\nu2 no\nu4 yes\n")
        (d / "utt2spk").write_text("u1 SPK1\nu2 SPK2\nu4 SPK3\n")
    one = load_source(root / "train")
    assert one.kind == "kaldi" and len(one.records) == 1 and "not a plain file path" in one.problems[0]
    r = one.records[0]
    assert (r.label, r.transcript, r.group, r.extra["utt"]) == ("yes", "yes", "SPK1", "u1")
    both = load_source(root)
    assert sorted((r.extra["utt"], r.split, r.group) for r in both.records) == [
        ("u1", "train", "SPK1"), ("u2", "test", "SPK2"), ("u4", "test", "SPK3")]


# --- name pattern -------------------------------------------------------------------------------------------------

def test_label_pattern(tmp_path):
    for name in ("yes_en_160.wav", "no_en+f3_130.wav", "yes_en-us_190.wav", "README.wav_"):
        wav(tmp_path / name) if name.endswith(".wav") else (tmp_path / name).write_text("x")
    wav(tmp_path / "noise.wav")
    src = load_source(tmp_path, label_pattern=r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_(?P<speed>\d+)")
    assert src.kind == "pattern"
    got = sorted((r.label, r.group, r.extra["speed"]) for r in src.records)
    assert got == [("no", "en+f3", "130"), ("yes", "en", "160"), ("yes", "en-us", "190")]
    assert "matched 3 of 4" in src.problems[0]


def test_label_pattern_errors(tmp_path):
    wav(tmp_path / "a_1.wav")
    wav(tmp_path / "b_2.wav")
    with pytest.raises(DataError, match="no \\(\\?P<label>"):
        load_source(tmp_path, label_pattern=r"(?P<word>[a-z]+)_")
    with pytest.raises(DataError, match="matched 0 of 2"):
        load_source(tmp_path, label_pattern=r"(?P<label>[a-z]+)-")
    with pytest.raises(DataError, match="not a valid regular expression"):
        load_source(tmp_path, label_pattern=r"(?P<label>[a-z]+")


# --- MNIST IDX ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", ["", ".gz"])
def test_idx_folder_and_file(tmp_path, gz):
    imgs = np.arange(5 * 4 * 4).reshape(5, 4, 4) % 256
    write_idx(tmp_path / f"train-images-idx3-ubyte{gz}", imgs)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{gz}", [3, 1, 4, 1, 5])
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{gz}", imgs[:2])
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{gz}", [9, 2])
    src = load_source(tmp_path)
    assert (src.kind, src.modality, len(src.records)) == ("idx", "image", 7)
    assert [(r.label, r.split, r.member) for r in src.records if r.split == "test"] == [("9", "test", 0),
                                                                                      ("2", "test", 1)]
    single = load_source(tmp_path / f"train-images-idx3-ubyte{gz}")
    assert [r.label for r in single.records] == ["3", "1", "4", "1", "5"]
    assert single.records[2].key.endswith(f"train-images-idx3-ubyte{gz}#2")
    assert len(list_files([tmp_path / f"t10k-images-idx3-ubyte{gz}"]).records) == 2


def test_idx_missing_or_mismatched_labels(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2)))
    with pytest.raises(DataError, match="no labels file"):
        load_source(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", [1, 2])
    with pytest.raises(DataError, match="2 labels but"):
        load_source(tmp_path)


# --- predict inputs -----------------------------------------------------------------------------------------------

def test_list_files(tmp_path):
    a = png(tmp_path / "a.png")
    png(tmp_path / "dir" / "b.jpg")
    src = list_files([str(a), str(tmp_path / "dir")])
    assert src.kind == "files" and [r.label for r in src.records] == [None, None] and src.modality == "image"
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not an image or audio file"):
        list_files([str(tmp_path / "x.txt")])
    with pytest.raises(DataError, match="does not exist"):
        list_files([str(tmp_path / "gone.png")])


def test_split_folders_above_class_folders(tmp_path):
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            png(tmp_path / split / c / f"{split}_{c}.png")
    src = load_source(tmp_path)
    assert src.kind == "folder" and src.labels == ["cat", "dog"]
    assert sorted((r.split, r.label) for r in src.records) == [("test", "cat"), ("test", "dog"),
                                                                ("train", "cat"), ("train", "dog")]

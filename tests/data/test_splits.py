"""make_splits: stratified, group-held-out, column, test list; leakage; saved splits round trip."""
import shutil
import struct
from collections import Counter

import numpy as np
import pytest

from seehear.data.records import Record
from seehear.data.splits import find_leakage, load_splits, make_splits, save_splits
from seehear.errors import DataError


def recs(n_per_class=20, classes=("a", "b", "c"), groups=None):
    out = []
    for c in classes:
        for j in range(n_per_class):
            g = None if groups is None else f"spk{j % groups}"
            out.append(Record(f"/d/{c}/{j}.wav", label=c, group=g))
    return out


def partition_ok(sp, n):
    allidx = sp["train"] + sp["valid"] + sp["test"]
    assert sorted(allidx) == list(range(n)), "every example in exactly one split"


def test_stratified_random_is_deterministic_and_stratified():
    r = recs()
    sp = make_splits(r, seed=1)
    partition_ok(sp, 60)
    assert Counter(r[i].label for i in sp["test"]) == {"a": 4, "b": 4, "c": 4}
    assert Counter(r[i].label for i in sp["valid"]) == {"a": 2, "b": 2, "c": 2}
    assert make_splits(r, seed=1) == sp and make_splits(r, seed=2) != sp


def test_tiny_class_falls_back_to_random():
    r = recs(10, ("a", "b")) + [Record("/d/c/0.wav", label="c")]  # 'c' cannot be stratified
    sp = make_splits(r, valid_fraction=0.2, test_fraction=0.2)
    partition_ok(sp, 21)
    assert len(sp["test"]) == 4 and len(sp["valid"]) == 4


def test_too_few_examples():
    with pytest.raises(DataError, match="too few"):
        make_splits(recs(1, ("a", "b")))


def test_group_split_no_overlap_deterministic_classes_in_train():
    r = recs(20, groups=10)
    sp = make_splits(r, by="speaker", seed=3)
    partition_ok(sp, 60)
    g = {s: {r[i].group for i in idx} for s, idx in sp.items()}
    assert not (g["train"] & g["valid"]) and not (g["train"] & g["test"]) and not (g["valid"] & g["test"])
    assert g["valid"] and g["test"]
    assert {r[i].label for i in sp["train"]} == {"a", "b", "c"}
    assert make_splits(r, by="speaker", seed=3) == sp
    assert 6 <= len(sp["test"]) <= 18  # about test_fraction of 60, in whole groups of 6


def test_group_split_keeps_every_class_in_train():
    # class 'z' is spoken by one speaker only; holding that speaker out would leave 'z' untrained
    r = recs(6, ("a", "b"), groups=6) + [Record(f"/d/z/{j}.wav", label="z", group="spk0") for j in range(3)]
    for seed in range(5):
        sp = make_splits(r, by="speaker", seed=seed)
        assert "z" in {r[i].label for i in sp["train"]}


def test_group_split_by_extra_column_and_errors():
    r = [Record(f"/d/{i}.png", label="ab"[i % 2], extra={"patient": f"p{i // 4}"}) for i in range(40)]
    sp = make_splits(r, by="patient")
    pats = {s: {r[i].extra["patient"] for i in idx} for s, idx in sp.items()}
    assert not (pats["train"] & pats["test"]) and not (pats["train"] & pats["valid"])
    with pytest.raises(DataError, match="no example has a speaker"):
        make_splits(recs(), by="speaker")
    with pytest.raises(DataError, match="only 2 distinct speaker"):
        make_splits(recs(10, groups=2), by="speaker")


def test_split_column_carves_missing_valid():
    r = recs(10, ("a", "b"))
    for i, x in enumerate(r):
        x.split = "test" if i % 5 == 0 else "train"
    sp = make_splits(r, column="split", valid_fraction=0.2)
    partition_ok(sp, 20)
    assert sp["test"] == [i for i in range(20) if i % 5 == 0]
    assert len(sp["valid"]) == 3 and all(r[i].split == "train" for i in sp["valid"])  # 20% of the 16 that train
    r[1].extra["fold"] = "bogus"
    for x in r:
        x.extra.setdefault("fold", "valid" if x is r[2] else "train")
    with pytest.raises(DataError, match="'bogus'"):
        make_splits(r, column="fold")


def test_test_files_list(tmp_path):
    (tmp_path / "a").mkdir()
    r = [Record(str(tmp_path / "a" / f"{j}.png"), label="xy"[j % 2]) for j in range(10)]
    lst = tmp_path / "test.txt"
    lst.write_text("# held-out\na/0.png\n" + f"{tmp_path / 'a' / '3.png'}\n\n")
    sp = make_splits(r, test_files=str(lst), valid_fraction=0.2)
    partition_ok(sp, 10)
    assert sp["test"] == [0, 3] and len(sp["valid"]) == 2
    lst.write_text("a/0.png\na/99.png\n")
    with pytest.raises(DataError, match="1 of 2 paths"):
        make_splits(r, test_files=str(lst))


def test_find_leakage_flags_copied_file_only(tmp_path):
    files = []
    for j in range(6):
        f = tmp_path / f"{j}.bin"
        f.write_bytes(bytes([j]) * 100)  # same size, different content: must not be flagged
        files.append(f)
    shutil.copy(files[0], tmp_path / "copy.bin")
    r = [Record(str(f), label="a") for f in files] + [Record(str(tmp_path / "copy.bin"), label="a")]
    sp = {"train": [0, 1, 2, 3], "valid": [4], "test": [5, 6]}
    assert find_leakage(r, sp) == [(r[0].key, r[6].key)]
    assert find_leakage(r, {"train": [1, 2, 3], "valid": [4], "test": [5, 6, 0]}) == []


def test_find_leakage_idx_members(tmp_path):
    imgs = np.zeros((4, 3, 3), np.uint8)
    imgs[1, 0, 0] = 9
    imgs[2, 1, 1] = 7  # members 0 and 3 are identical
    (tmp_path / "x-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 4, 3, 3) + imgs.tobytes())
    r = [Record(str(tmp_path / "x-images-idx3-ubyte"), label="0", member=i) for i in range(4)]
    assert find_leakage(r, {"train": [0, 1], "valid": [2], "test": [3]}) == [(r[0].key, r[3].key)]


def test_save_load_round_trip(tmp_path):
    r = recs(10, ("a", "b"))
    sp = make_splits(r, seed=5)
    save_splits(r, sp, tmp_path / "split.json")
    shuffled = list(reversed(r))  # a re-listing may come in another order: keys, not indices, are saved
    back = load_splits(shuffled, tmp_path / "split.json")
    assert {s: sorted(shuffled[i].key for i in idx) for s, idx in back.items()} == \
           {s: sorted(r[i].key for i in idx) for s, idx in sp.items()}
    with pytest.raises(DataError, match="1 examples in .* no longer in the data"):
        load_splits(r[1:], tmp_path / "split.json")


def test_valid_max_caps_validation_and_the_rest_trains():
    r = recs(100)  # 300 examples: 10% would be 30
    sp = make_splits(r, valid_fraction=0.1, valid_max=9, seed=0)
    partition_ok(sp, 300)
    assert len(sp["valid"]) == 9 and len(sp["test"]) == 60 and len(sp["train"]) == 231
    for i, x in enumerate(r):
        x.split = "test" if i % 5 == 0 else "train"
    sp = make_splits(r, column="split", valid_fraction=0.1, valid_max=12)
    assert len(sp["valid"]) == 12 and len(sp["train"]) == 240 - 12
    assert len(make_splits(r, column="split", valid_fraction=0.1)["valid"]) == 24  # no cap: 10% of the 240


def test_a_large_test_column_leaves_few_labels_their_share():
    """40 labelled training examples beside 1,000 test ones (few labels, a big test set): validation is 10% of the
    40, not of all 1,040 (that asked for 104 of 40 and crashed)."""
    r = recs(520, ("a", "b"))
    for i, x in enumerate(r):
        x.split = "train" if i % 26 == 0 else "test"  # 20 of each class train
    sp = make_splits(r, column="split", valid_fraction=0.1)
    partition_ok(sp, 1040)
    assert len(sp["valid"]) == 4 and len(sp["train"]) == 36

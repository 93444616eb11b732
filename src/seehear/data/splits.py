"""Train / valid / test index lists: stratified random, group-held-out, from a column, or from a file list.

Deterministic given the seed, saved with the run (split.json of keys) so resume and `evaluate` reuse it exactly.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from seehear.atomic import write_json
from seehear.data.records import SPLIT_NAMES
from seehear.errors import DataError

SPLITS = ("train", "valid", "test")


def make_splits(records, *, by=None, column=None, test_files=None, valid_fraction=0.1, test_fraction=0.2,
                valid_max=None, seed=0) -> dict[str, list[int]]:
    """Indices into `records` for train/valid/test.

    by: 'speaker'/'group' (Record.group) or an extra column: no group in two splits.
    column: take the split from Record.split ('split') or an extra column; a missing valid is carved from train.
    test_files: a text file (or list) of paths that form the test split; valid is carved from the rest.
    Otherwise stratified random by label (plain random when some class is too small to stratify).
    valid_max caps the validation examples that valid_fraction would take (large data sets train on the rest).
    """
    n = len(records)
    if n == 0:
        raise DataError("no examples to split")
    rng = np.random.default_rng(seed)
    labels = [r.label for r in records]
    groups = _groups(records, by) if by else None
    everything = list(range(n))

    if column:
        parts = {s: [] for s in SPLITS}
        for i, r in enumerate(records):
            v = r.split if column == "split" else r.extra.get(column)
            s = SPLIT_NAMES.get(str(v).strip().lower()) if v not in (None, "") else "train"
            if s is None:
                raise DataError(f"split column {column!r} has value {v!r} for {r.key}: use train, valid or test")
            parts[s].append(i)
        if not parts["train"]:
            raise DataError(f"split column {column!r} puts no example in train")
        if not parts["valid"]:  # a share of what trains: a large test column must not eat the training part
            n_valid = _count(valid_fraction, len(parts["train"]), valid_max)
            parts["train"], parts["valid"] = _carve(parts["train"], n_valid, labels, groups, rng, seed)
        return _done(parts, groups)

    if test_files is not None:
        test = _match_listed(records, test_files)
        test_set = set(test)
        rest = [i for i in everything if i not in test_set]
        if not rest:
            raise DataError("the test file list covers every example: nothing is left to train on")
        train, valid = _carve(rest, _count(valid_fraction, len(rest), valid_max), labels, groups, rng, seed)
        return _done({"train": train, "valid": valid, "test": test}, groups)

    n_test, n_valid = _count(test_fraction, n), _count(valid_fraction, n, valid_max)
    need = 1 + (n_test > 0) + (n_valid > 0)
    if groups is not None and len(set(groups)) < need:
        raise DataError(f"only {len(set(groups))} distinct {by} values: a split held out by {by} needs at least "
                        f"{need} (train, valid, test); add data or set data.test_fraction=0")
    if n - n_test - n_valid < 1:
        raise DataError(f"only {n} examples: too few to hold out {n_test} for test and {n_valid} for validation")
    rest, test = _carve(everything, n_test, labels, groups, rng, seed)
    train, valid = _carve(rest, n_valid, labels, groups, rng, seed + 1)
    return _done({"train": train, "valid": valid, "test": test}, groups)


def _count(frac: float, n: int, cap: int | None = None) -> int:
    k = 0 if frac <= 0 else max(1, round(frac * n))
    return min(k, cap) if cap is not None and cap > 0 else k


def _groups(records, by: str) -> list[str]:
    """Group of each record; a record with none is its own group (it cannot leak into another)."""
    vals = [r.extra.get(by) if by in r.extra else r.group if by in ("speaker", "group") else None for r in records]
    if all(v in (None, "") for v in vals):
        raise DataError(f"split by {by!r}: no example has a {by} (use a manifest column {by!r}, or a "
                        f"--label-pattern with a (?P<speaker>...) group)")
    return [str(v) if v not in (None, "") else f"\0{r.key}" for v, r in zip(vals, records)]


def _carve(idx: list[int], k: int, labels, groups, rng, seed) -> tuple[list[int], list[int]]:
    """Split `idx` into (kept, about k held out): whole groups when groups are given, else stratified by label."""
    if k <= 0 or not idx:
        return list(idx), []
    if groups is not None:
        return _carve_groups(idx, k, labels, groups, rng)
    y = [labels[i] for i in idx]
    counts = Counter(y)
    can_stratify = None not in counts and min(counts.values()) >= 2 and len(counts) <= k <= len(idx) - len(counts)
    try:
        kept, held = train_test_split(idx, test_size=k, random_state=seed, stratify=y if can_stratify else None)
    except ValueError:  # sklearn refuses some tiny stratified splits: plain random is still a valid split
        kept, held = train_test_split(idx, test_size=k, random_state=seed)
    return sorted(kept), sorted(held)


def _carve_groups(idx, k, labels, groups, rng):
    by_group: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        by_group[groups[i]].append(i)
    names = sorted(by_group)
    if len(names) < 2:
        raise DataError(f"split by group: only {len(names)} group ({names[0]!r}) here, need at least 2 so that "
                        f"training and held-out data have different groups")
    order = [names[j] for j in rng.permutation(len(names))]
    left = Counter(labels[i] for i in idx)  # examples per class still in the kept part
    held, got = [], 0
    for g in order:  # whole groups until about k examples are held out, never every group
        if got >= k or len(held) == len(names) - 1:
            break
        n_g = Counter(labels[i] for i in by_group[g])
        if any(left[c] <= m for c, m in n_g.items()):
            continue  # holding g out would take the last examples of a class away from training
        if got and abs(got + len(by_group[g]) - k) > abs(got - k):
            continue  # this group would overshoot more than stopping here
        held.append(g)
        got += len(by_group[g])
        left -= n_g
    if not held:  # every group holds a class's last examples: hold one out anyway rather than fail
        held = [order[0]]
    held_set = set(held)
    kept = [g for g in names if g not in held_set]
    return sorted(i for g in kept for i in by_group[g]), sorted(i for g in held for i in by_group[g])


def _done(parts: dict, groups) -> dict[str, list[int]]:
    out = {s: sorted(parts.get(s, [])) for s in SPLITS}
    if groups is not None:  # the promise of a held-out split: check it rather than trust it
        seen = {s: {groups[i] for i in out[s]} for s in SPLITS}
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            both = seen[a] & seen[b]
            if both:
                raise DataError(f"group {sorted(both)[0]!r} is in both {a} and {b}: the split column contradicts "
                                f"the held-out grouping; drop one of the two options")
    return out


def _match_listed(records, test_files) -> list[int]:
    if isinstance(test_files, (str, Path)):
        f = Path(test_files)
        if not f.is_file():
            raise DataError(f"test file list {f} does not exist: give a text file with one path per line")
        base = f.resolve().parent
        lines = [ln.strip() for ln in f.read_text().splitlines()]
        where = str(f)
    else:
        base, lines, where = Path.cwd(), [str(x).strip() for x in test_files], "the test file list"
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    index = {r.key: i for i, r in enumerate(records)}
    out, missing = set(), []
    for ln in lines:
        i = index.get(ln)
        # else relative to the list's folder, then to the working directory; 'file#3' names an IDX member
        fp, member = (ln.rsplit("#", 1)[0], "#" + ln.rsplit("#", 1)[1]) if re.fullmatch(r".+#\d+", ln) else (ln, "")
        for cand in (base / fp, Path.cwd() / fp):
            if i is None:
                i = index.get(str(cand.resolve()) + member)
        (missing.append(ln) if i is None else out.add(i))
    if missing:
        raise DataError(f"{len(missing)} of {len(lines)} paths in {where} are not in the data (e.g. {missing[0]}): "
                        f"paths are relative to the list's folder")
    if not out:
        raise DataError(f"{where} lists no files")
    return sorted(out)


# --- leakage -----------------------------------------------------------------------------------------------------

def content_digests(records, indices=None, *, workers: int = 0) -> dict[int, str]:
    """blake2b of each example's bytes (an IDX member's pixels); only files whose size collides with another's are
    hashed, the rest get a unique size-based tag. Unreadable files are left out."""
    indices = range(len(records)) if indices is None else indices
    sizes: dict[int, str] = {}
    for i in indices:
        r = records[i]
        if r.member is not None:
            sizes[i] = "member"
        else:
            try:
                sizes[i] = f"size:{os.path.getsize(r.path)}"
            except OSError:
                pass
    counts = Counter(sizes.values())
    todo = [i for i, s in sizes.items() if counts[s] > 1]
    out = {i: s for i, s in sizes.items() if counts[s] == 1}

    def digest(i):
        r = records[i]
        h = hashlib.blake2b(digest_size=16)
        if r.member is not None:
            from seehear.data.decode import read_idx

            h.update(np.ascontiguousarray(read_idx(r.path)[r.member]).tobytes())
        else:
            try:
                with open(r.path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
            except OSError:
                return i, None
        return i, h.hexdigest()

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for i, d in pool.map(digest, todo):
            if d is not None:
                out[i] = d
    return out


def find_leakage(records, splits) -> list[tuple[str, str]]:
    """(train key, valid/test key) for every held-out example whose content is identical to a training example."""
    held = [i for s in ("valid", "test") for i in splits.get(s, [])]
    if not held or not splits.get("train"):
        return []
    d = content_digests(records, list(splits["train"]) + held)
    train_by_digest: dict[str, int] = {}
    for i in splits["train"]:
        if i in d:
            train_by_digest.setdefault(d[i], i)
    return [(records[train_by_digest[d[i]]].key, records[i].key) for i in held
            if i in d and d[i] in train_by_digest]


# --- saved splits ------------------------------------------------------------------------------------------------

def save_splits(records, splits, path) -> None:
    """split.json: the keys of each split (written atomically)."""
    write_json(path, {s: [records[i].key for i in splits.get(s, [])] for s in SPLITS})


def load_splits(records, path) -> dict[str, list[int]]:
    """Indices of the saved keys in `records`; keys that are gone mean the data changed since the run."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"split file {p} does not exist") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"split file {p} is not readable JSON ({e}): delete it to make a new split") from None
    index = {r.key: i for i, r in enumerate(records)}
    out, gone = {}, []
    for s in SPLITS:
        keys = data.get(s, [])
        gone += [k for k in keys if k not in index]
        out[s] = sorted(index[k] for k in keys if k in index)
    if gone:
        raise DataError(f"{len(gone)} examples in {p} are no longer in the data (e.g. {gone[0]}): the data changed "
                        f"since the split was made; restore it or start a new run")
    return out


def splits_for(records, data_cfg, seed: int, path, resume: bool) -> dict[str, list[int]]:
    """A run's train/valid/test split: the saved one (split.json) when resuming, else made per the run's data
    settings and saved."""
    d = data_cfg
    if resume and Path(path).is_file():
        return load_splits(records, path)
    column = d.split_column
    given = {r.split for r in records}
    if column is None and not d.split_by and not d.test_files and "train" in given and given & {"test", "valid"}:
        column = "split"  # the data says its own split (train/ and test/ folders, a split column): keep it
    splits = make_splits(records, by=d.split_by, column=column, test_files=d.test_files,
                         valid_fraction=d.valid_fraction, valid_max=d.valid_max, test_fraction=d.test_fraction,
                         seed=seed)
    save_splits(records, splits, path)
    return splits

"""Turn what the user pointed at into a Source: a list of Records, nothing decoded.

Kinds: folder of class subfolders | .csv/.jsonl manifest | Kaldi dir | flat folder + name pattern | MNIST IDX |
unlabeled files (predict). Every user mistake becomes a one-line DataError that names the path and the fix.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

from seehear.data import frames
from seehear.data.records import AUDIO_EXTS, IMAGE_EXTS, SPLIT_NAMES, Record, Source
from seehear.errors import DataError

MANIFEST_EXTS = {".csv", ".jsonl"}
_IDX_IMAGES = re.compile(r"images[.-]idx3-ubyte(\.gz)?$")
_PATH_COLS = ("path", "file", "filename", "filepath")
_LABEL_COLS = ("label", "class", "category")
_MAX_PROBLEMS = 50  # keep Source.problems readable on huge broken manifests


def load_source(path: str | Path, *, label_pattern: str | None = None, modality: str = "auto") -> Source:
    """List the examples under `path` (see module doc for the accepted layouts)."""
    if modality == "audio-image":  # a manifest of (image, audio, label) pairs: data/pairs.py
        from seehear.data.pairs import load_pairs

        return load_pairs(path)
    if modality not in ("auto", "image", "audio", "frames"):
        raise DataError(f"modality {modality!r} is not one of auto, image, audio, frames, audio-image")
    p = _existing(path)
    if p.is_file():
        name = p.name.lower()
        if p.suffix.lower() in MANIFEST_EXTS:
            return _manifest(p, modality)
        if _IDX_IMAGES.search(name):
            return _idx(p, [p], modality)
        if p.suffix.lower() in IMAGE_EXTS | AUDIO_EXTS:
            return _finish([Record(str(p))], modality, "files", p, [])
        raise DataError(f"{p}: cannot use a {p.suffix or 'extension-less'} file as data; point at a folder of "
                        f"class subfolders, a .csv/.jsonl manifest, a Kaldi dir or an MNIST *-images-idx3-ubyte file")
    if (p / "wav.scp").is_file() or any((d / "wav.scp").is_file() for d in _subdirs(p)):
        return _kaldi(p, modality)
    idx_files = sorted(f for f in p.iterdir() if f.is_file() and _IDX_IMAGES.search(f.name.lower()))
    if idx_files:
        return _idx(p, idx_files, modality)
    if label_pattern is not None:
        return _pattern(p, label_pattern, modality)
    return _folder(p, modality)


def list_files(paths: list[str], modality: str = "auto") -> Source:
    """Files and folders (searched recursively) to predict on; labels are None. modality="frames": each frame
    folder or animated file is one example (data/frames.py)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records: list[Record] = []
    for raw in paths:
        p = _existing(raw)
        if modality == "frames":
            found = [p] if p.is_file() else frames.find_sequences(p)
            if not found:
                raise DataError(f"{p} holds no frame folders or animated GIF/WebP files to predict on")
            records += [Record(str(f)) for f in found]
        elif p.is_file() and _IDX_IMAGES.search(p.name.lower()):
            records += _idx(p, [p], "auto").records
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_EXTS | AUDIO_EXTS:
                raise DataError(f"{p} is not an image or audio file (known extensions: "
                                f"{' '.join(sorted(IMAGE_EXTS | AUDIO_EXTS))})")
            records.append(Record(str(p)))
        else:
            found = _media_files(p)
            if not found:
                raise DataError(f"{p} holds no image or audio files: point at files or a folder that holds them")
            records += [Record(str(f)) for f in found]
    if not records:
        raise DataError("no files given to predict on")
    root = str(Path(paths[0]).resolve()) if len(paths) == 1 else ", ".join(map(str, paths))
    return _finish(records, modality, "files", root, [])


def require_trainable(source: Source) -> Source:
    """Raise unless the source has labels and at least two classes (what training needs)."""
    labels = source.labels
    if not labels:
        raise DataError(f"{source.root} has no labels: use one subfolder per class, a manifest with a label column, "
                        f"or --label-pattern with a (?P<label>...) group")
    if len(labels) < 2:
        raise DataError(f"{source.root} has only one class ({labels[0]!r}): a recognizer needs at least two classes "
                        f"(one subfolder per class)")
    return source


def detect_modality(records: list[Record], where) -> str:
    """image or audio from file extensions (IDX members are images); both at once is an error."""
    exts = Counter(".png" if r.member is not None else Path(r.path).suffix.lower() for r in records)
    n_img = sum(n for e, n in exts.items() if e in IMAGE_EXTS)
    n_aud = sum(n for e, n in exts.items() if e in AUDIO_EXTS)
    if n_img and n_aud:
        raise DataError(f"{where} mixes {n_img} image and {n_aud} audio files: keep one kind per dataset, "
                        f"or pass --modality image|audio to use only one kind")
    if not n_img and not n_aud:
        exts = " ".join(sorted(IMAGE_EXTS | AUDIO_EXTS))
        raise DataError(f"{where} holds no image or audio files (extensions: {exts})")
    return "image" if n_img else "audio"


# --- kinds -------------------------------------------------------------------------------------------------------

def _folder(p: Path, modality: str) -> Source:
    entries = [e for e in p.iterdir() if not e.name.startswith(".")]
    if not entries:
        raise DataError(f"folder {p} is empty: put one subfolder per class in it, each holding that class's files")
    records, problems = [], []
    subdirs = _subdirs(p)
    # train/<class>/..., test/<class>/... (CIFAR, ImageNet style): the top folder is the split, not the class
    split_layout = bool(subdirs) and all(d.name.lower() in SPLIT_NAMES and _subdirs(d) for d in subdirs)
    class_dirs = [(d, SPLIT_NAMES[s.name.lower()] if s else None)
                  for s in (subdirs if split_layout else [None]) for d in (_subdirs(s) if s else subdirs)]
    seqs = frames.folder_sequences(class_dirs, modality == "frames") \
        if modality in ("auto", "frames") and class_dirs else None
    if seqs is not None and seqs[0]:  # every example a frame folder or an animation (or --modality frames)
        for note in seqs[1]:
            note_problem(problems, note)
        return Source(seqs[0], "frames", "folder", str(p), problems)
    for split_dir in (subdirs if split_layout else [None]):
        for d in (_subdirs(split_dir) if split_dir else subdirs):
            found = _media_files(d)
            if not found:
                note_problem(problems, f"class folder {d} holds no image or audio files, ignored")
            split = SPLIT_NAMES[split_dir.name.lower()] if split_dir else None
            records += [Record(str(f), label=d.name, split=split) for f in found]
    loose = [f for f in entries if f.is_file() and f.suffix.lower() in IMAGE_EXTS | AUDIO_EXTS]
    if not records:
        if loose:  # a flat folder without labels: usable for predict, and require_trainable says what to do
            return _finish([Record(str(f)) for f in sorted(loose)], modality, "files", p, [])
        manifests = [e for e in entries if e.is_file() and e.suffix.lower() in MANIFEST_EXTS]
        if len(manifests) == 1:
            return _manifest(manifests[0], modality)
        raise DataError(f"no image or audio files under {p}: put one subfolder per class holding .png/.jpg or "
                        f".wav/.flac files")
    if loose:
        note_problem(problems, f"{len(loose)} files directly in {p} ignored (e.g. {loose[0].name}): move them into a class "
                        f"subfolder")
    return _finish(records, modality, "folder", p, problems)


def _pattern(p: Path, pattern: str, modality: str) -> Source:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise DataError(f"--label-pattern {pattern!r} is not a valid regular expression: {e}") from None
    if "label" not in rx.groupindex:
        raise DataError(f"--label-pattern {pattern!r} has no (?P<label>...) group: name the part of the file name "
                        f"that is the class, e.g. '(?P<label>[a-z]+)_'")
    files = _media_files(p)
    if not files:
        raise DataError(f"no image or audio files under {p} to apply --label-pattern to")
    records, missed = [], []
    for f in files:
        m = rx.search(f.name)
        if not m or not m.group("label"):
            missed.append(f.name)
            continue
        g = m.groupdict()
        extra = {k: v for k, v in g.items() if k not in ("label", "speaker", "group", "split") and v is not None}
        split = SPLIT_NAMES.get((g.get("split") or "").lower())
        records.append(Record(str(f), label=g["label"], group=g.get("speaker") or g.get("group"), split=split,
                              extra=extra))
    if not records:
        raise DataError(f"--label-pattern {pattern!r} matched 0 of {len(files)} file names under {p} "
                        f"(e.g. {', '.join(missed[:3])}): it is searched in the file name only")
    problems = []
    if missed:
        note_problem(problems, f"--label-pattern matched {len(records)} of {len(files)} files; skipped {len(missed)} "
                        f"(e.g. {', '.join(missed[:3])})")
    return _finish(records, modality, "pattern", p, problems)


def _manifest(p: Path, modality: str) -> Source:
    problems: list[str] = []
    rows = _read_rows(p, problems)
    if not rows:
        raise DataError(f"manifest {p} has no rows" + (f" ({problems[0]})" if problems else ""))
    cols = set().union(*(r[1].keys() for r in rows))
    pcol = next((c for c in _PATH_COLS if c in cols), None)
    lcol = next((c for c in _LABEL_COLS if c in cols), None)
    if lcol is None and "transcript" in cols:
        lcol = "transcript"  # a speech-to-text manifest: the transcript is what is learned
    if pcol is None and {"image", "audio"} <= cols:
        raise DataError(f"manifest {p} pairs images with recordings (image and audio columns): train on it with "
                        f"--modality audio-image")
    if pcol is None or lcol is None:
        missing = " and ".join(n for n, c in (("path", pcol), ("label", lcol)) if c is None)
        raise DataError(f"manifest {p} has no {missing} column (columns: {', '.join(sorted(cols)) or 'none'}): "
                        f"it needs at least 'path' and 'label'")
    known = {pcol, lcol, "speaker", "split", "transcript"}
    records = []
    for line, row in rows:
        fp, label = cell_text(row.get(pcol)), cell_text(row.get(lcol))
        if not fp or label is None:
            note_problem(problems, f"{p.name} line {line}: empty {'path' if not fp else 'label'}, row skipped")
            continue
        f = Path(fp).expanduser()
        f = f if f.is_absolute() else p.parent / f
        if not (f.is_file() or (f.is_dir() and modality in ("auto", "frames"))):  # a folder: a clip's frames
            note_problem(problems, f"{p.name} line {line}: file {fp} not found, row skipped")
            continue
        split, group, extra = row_facts(row, cols, known, f"{p.name} line {line}", problems)
        records.append(Record(str(f.resolve()), label=label, group=group, split=split,
                              transcript=cell_text(row.get("transcript")), extra=extra))
    if not records:
        raise DataError(f"manifest {p}: none of its {len(rows)} rows is usable ({problems[0]})")
    return _finish(records, modality, "manifest", p, problems)


def read_manifest_rows(p: Path, problems: list[str]) -> list[tuple[int, dict]]:
    """(line number, row with lower-cased column names) of a .csv/.jsonl manifest; bad rows noted in problems."""
    return _read_rows(Path(p), problems)


def _read_rows(p: Path, problems: list[str]) -> list[tuple[int, dict]]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read manifest {p}: {e}; save it as UTF-8 text") from None
    if p.suffix.lower() == ".csv":
        lines = text.splitlines()
        head = lines[0] if lines else ""
        delim = max(",;\t", key=head.count) if any(c in head for c in ",;\t") else ","  # Excel may save ';' or tabs
        reader = csv.DictReader(lines, delimiter=delim)
        out = []
        for i, row in enumerate(reader, start=2):  # line 1 is the header
            if None in row:  # more cells than header columns
                note_problem(problems, f"{p.name} line {i}: {len(row[None])} cells more than the header, row skipped")
                continue
            out.append((i, {k.strip().lower(): v for k, v in row.items() if k is not None}))
        return out
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            note_problem(problems, f"{p.name} line {i}: not valid JSON ({e.msg}), row skipped")
            continue
        if not isinstance(obj, dict):
            note_problem(problems, f"{p.name} line {i}: not a JSON object, row skipped")
            continue
        out.append((i, {str(k).strip().lower(): v for k, v in obj.items()}))
    return out


def _kaldi(p: Path, modality: str) -> Source:
    """One Kaldi dir, or a folder of them (train/, test/ ...: the folder name becomes the split). Speaker facts
    (spk2gender, spk2age ...) become columns of each utterance (gender, age ...), for fairness reports."""
    dirs = [p] if (p / "wav.scp").is_file() else [d for d in _subdirs(p) if (d / "wav.scp").is_file()]
    records, problems = [], []
    for d in dirs:
        split = SPLIT_NAMES.get(d.name.lower()) if d is not p else None
        text = _kaldi_table(d / "text")
        spk = _kaldi_table(d / "utt2spk")
        # speaker facts (spk2gender, spk2age, ...): columns gender, age, ... of every utterance of that speaker
        facts = {f.name[4:]: _kaldi_table(f) for f in sorted(d.glob("spk2*")) if f.name != "spk2utt" and f.is_file()}
        for line, (utt, wav) in enumerate(_kaldi_pairs(d / "wav.scp"), start=1):
            if not wav or wav.endswith("|") or ":" in Path(wav).name:
                note_problem(problems, f"{d / 'wav.scp'} line {line}: {utt} is not a plain file path (pipes and ark "
                                f"offsets are not supported), skipped")
                continue
            f = _kaldi_path(d, wav)
            if f is None:
                note_problem(problems, f"{d / 'wav.scp'} line {line}: {wav} not found next to {d} or in {d.parent}, skipped")
                continue
            tr, who = text.get(utt), spk.get(utt)
            known = {k: t[who] for k, t in facts.items() if who in t}
            records.append(Record(str(f), label=tr, group=who, split=split, transcript=tr,
                                  extra={"utt": utt, **known}))
    if not records:
        raise DataError(f"Kaldi dir {p}: no usable entries in wav.scp"
                        + (f" ({problems[0]})" if problems else " (the file is empty)"))
    return _finish(records, modality, "kaldi", p, problems)


def _kaldi_pairs(f: Path):
    for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.strip().split(maxsplit=1)
        if parts:
            yield parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _kaldi_table(f: Path) -> dict[str, str]:
    return dict(_kaldi_pairs(f)) if f.is_file() else {}


def _kaldi_path(d: Path, wav: str) -> Path | None:
    """Relative wav.scp paths are relative to the Kaldi dir or, commonly, to its parent."""
    w = Path(wav)
    for c in ([w] if w.is_absolute() else [d / w, d.parent / w, Path.cwd() / w]):
        if c.is_file():
            return c.resolve()
    return None


def _idx(root: Path, image_files: list[Path], modality: str) -> Source:
    from seehear.data.decode import read_idx, read_idx_shape

    if modality == "audio":
        raise DataError(f"{root} is MNIST IDX image data, not audio: drop --modality audio")
    records = []
    for f in image_files:
        m = _IDX_IMAGES.search(f.name.lower())
        stem = f.name[:m.start()]
        cands = [f.with_name(f"{stem}labels{sep}idx1-ubyte{gz}") for sep in "-." for gz in ("", ".gz")]
        lab = next((c for c in cands if c.is_file()), None)
        if lab is None:
            raise DataError(f"{f}: no labels file beside it (expected {cands[0].name} or {cands[1].name})")
        n = read_idx_shape(f)[0]
        labels = read_idx(lab)
        if labels.ndim != 1 or len(labels) != n:
            raise DataError(f"{lab} holds {len(labels)} labels but {f.name} holds {n} images: use the matching pair")
        s = stem.lower()
        split = "test" if s.startswith(("t10k", "test")) else "train" if s.startswith("train") else None
        path = str(f.resolve())
        records += [Record(path, label=str(int(y)), split=split, member=i) for i, y in enumerate(labels.tolist())]
    return Source(records, "image", "idx", str(root), [])


# --- helpers -----------------------------------------------------------------------------------------------------

def _finish(records: list[Record], modality: str, kind: str, root, problems: list[str]) -> Source:
    where = str(root)
    if modality == "auto":
        # sequences are auto-detected in training data; files to predict on are read as their run reads them
        seq = kind != "files" and frames.all_sequences(records)
        modality = "frames" if seq else detect_modality(records, where)
    elif modality == "frames":  # image sequences: frame folders and animated files
        kept = [r for r in records if r.member is None and frames.is_sequence(r.path)]
        if not kept:
            raise DataError(f"{where} holds no frame folders or animated GIF/WebP files")
        if len(kept) < len(records):
            note_problem(problems, f"--modality frames: ignored {len(records) - len(kept)} other files")
        records = kept
    else:  # an explicit modality keeps only that kind of file
        exts = IMAGE_EXTS if modality == "image" else AUDIO_EXTS
        kept = [r for r in records if (".png" if r.member is not None else Path(r.path).suffix.lower()) in exts]
        if not kept:
            raise DataError(f"{where} holds no {modality} files (extensions: {' '.join(sorted(exts))})")
        if len(kept) < len(records):
            note_problem(problems, f"--modality {modality}: ignored {len(records) - len(kept)} other files")
        records = kept
    return Source(records, modality, kind, where, problems)


def _existing(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist: check the path (relative paths start from {Path.cwd()})")
    return p.resolve()


def _subdirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def _media_files(p: Path) -> list[Path]:
    """Image/audio files below p, sorted, skipping hidden files and folders."""
    exts = IMAGE_EXTS | AUDIO_EXTS
    return sorted(f for f in p.rglob("*") if f.suffix.lower() in exts and f.is_file()
                  and not any(part.startswith(".") for part in f.relative_to(p).parts))


def row_facts(row: dict, cols, known: set, where: str, problems: list[str]) -> tuple:
    """(split, group, extra columns) of a manifest row; an unknown split value is noted and ignored. The group is
    the speaker column, else the group column; every other column the reader does not know stays in extra."""
    split_raw = cell_text(row.get("split"))
    split = SPLIT_NAMES.get(split_raw.lower()) if split_raw else None
    if split_raw and split is None:
        note_problem(problems, f"{where}: split {split_raw!r} is not train/valid/test, ignored")
    group = cell_text(row.get("speaker")) or (None if "speaker" in cols else cell_text(row.get("group")))
    extra = {k: v for k, v in row.items() if k not in known and not (k == "group" and "speaker" not in cols)}
    return split, group, extra


def cell_text(v) -> str | None:
    """A manifest cell as stripped text, or None when empty (shared with data/pairs.py)."""
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def note_problem(problems: list[str], msg: str) -> None:
    """Keep a problem line, at most _MAX_PROBLEMS of them (shared with data/pairs.py)."""
    if len(problems) < _MAX_PROBLEMS:
        problems.append(msg)
    elif len(problems) == _MAX_PROBLEMS:
        problems.append("... more problems not listed")

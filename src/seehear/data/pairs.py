"""Audio-image pairs (modality audio-image): a manifest whose rows name an image, a recording and a label.

    image,audio,label[,speaker|group][,split][,...]     (.csv or .jsonl; paths relative to the manifest)

Each pair is one PairRecord (`path` is the image, `audio` the recording). Decoding reuses data/cache.decode_all for
each side, so images become the same uint8 [N,C,H,W] tensor and recordings the same int16 [N,S] tensor as for
single-modality runs; a pair whose image or recording is missing or damaged is skipped and listed with the side
that failed, and every other pair is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from seehear.data.cache import decode_all
from seehear.data.records import AUDIO_EXTS, IMAGE_EXTS, Record, Source
from seehear.data.sources import MANIFEST_EXTS, cell_text, note_problem, read_manifest_rows, row_facts
from seehear.errors import DataError

MODALITY = "audio-image"


@dataclass
class PairRecord(Record):
    audio: str = ""  # absolute path of the recording (Record.path is the image)

    @property
    def key(self) -> str:
        # an image may be paired with several recordings (and the reverse): the pair is the example
        return f"{self.path}+{self.audio}"


@dataclass
class PairedSet:
    image: torch.Tensor  # uint8 [N,C,H,W]
    audio: torch.Tensor  # int16 [N,S]
    keep: list[int]  # row i is records[keep[i]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (pair key, "image: reason" / "audio: reason")


def is_pairs_manifest(path) -> bool:
    """True when `path` is a .csv/.jsonl manifest with both an image and an audio column (read from its head)."""
    p = Path(path).expanduser()
    if not (p.is_file() and p.suffix.lower() in MANIFEST_EXTS):
        return False
    try:
        with open(p, encoding="utf-8-sig") as f:
            head = f.readline().lower()
    except (OSError, UnicodeDecodeError):
        return False
    return '"image"' in head and '"audio"' in head if p.suffix.lower() == ".jsonl" else \
        {"image", "audio"} <= {c.strip().strip('"') for c in head.replace(";", ",").replace("\t", ",").split(",")}


def load_pairs(path) -> Source:
    """The pairs a manifest lists (see the module doc). Files are not opened here: a missing one is found when the
    pair is decoded and listed in skipped.json with its side."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist: check the path (relative paths start from {Path.cwd()})")
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in MANIFEST_EXTS)
        if len(found) != 1:
            raise DataError(f"--modality {MODALITY} needs a manifest (.csv or .jsonl with image, audio and label "
                            f"columns); {p} holds {len(found)} manifests")
        p = found[0]
    if p.suffix.lower() not in MANIFEST_EXTS:
        raise DataError(f"--modality {MODALITY} needs a .csv or .jsonl manifest with image, audio and label "
                        f"columns, not {p.name}")
    p = p.resolve()
    problems: list[str] = []
    rows = read_manifest_rows(p, problems)
    if not rows:
        raise DataError(f"manifest {p} has no rows" + (f" ({problems[0]})" if problems else ""))
    cols = set().union(*(r.keys() for _, r in rows))
    lcol = next((c for c in ("label", "class", "category") if c in cols), None)
    missing = [n for n, ok in (("image", "image" in cols), ("audio", "audio" in cols), ("label", lcol)) if not ok]
    if missing:
        raise DataError(f"manifest {p} has no {' or '.join(missing)} column (columns: {', '.join(sorted(cols))}): "
                        f"audio-image pairs need image, audio and label")
    known = {"image", "audio", lcol, "speaker", "split"}
    records = []
    for line, row in rows:
        img, aud, label = cell_text(row.get("image")), cell_text(row.get("audio")), cell_text(row.get(lcol))
        empty = [n for n, v in (("image", img), ("audio", aud), ("label", label)) if v is None]
        if empty:
            note_problem(problems, f"{p.name} line {line}: empty {' and '.join(empty)}, row skipped")
            continue
        bad = [n for n, v, exts in (("image", img, IMAGE_EXTS), ("audio", aud, AUDIO_EXTS))
               if Path(v).suffix.lower() not in exts]
        if bad:
            note_problem(problems, f"{p.name} line {line}: the {' and '.join(bad)} column does not name an "
                            f"{' / '.join(bad)} file, row skipped")
            continue
        split, group, extra = row_facts(row, cols, known, f"{p.name} line {line}", problems)
        records.append(PairRecord(_resolve(p, img), label=label, group=group, split=split, extra=extra,
                                  audio=_resolve(p, aud)))
    if not records:
        raise DataError(f"manifest {p}: none of its {len(rows)} rows is usable ({problems[0]})")
    return Source(records, MODALITY, "pairs", str(p), problems)


def decode_pairs(records: list[PairRecord], cfg, *, workers: int = 0, progress: bool = True) -> PairedSet:
    """Both sides of every pair, decoded once by data/cache.decode_all; a pair is kept only when both decode."""
    n = len(records)
    img = decode_all(records, cfg, "image", workers=workers, progress=progress)
    aud = decode_all([Record(r.audio) for r in records], cfg, "audio", workers=workers, progress=progress)
    reasons: dict[int, list[str]] = {}
    for side, d in (("image", img), ("audio", aud)):
        failed = sorted(set(range(n)) - set(d.keep))  # decode_all lists its skips in index order
        for i, (_, why) in zip(failed, d.skipped):
            reasons.setdefault(i, []).append(f"{side}: {why}")
    keep = [i for i in range(n) if i not in reasons]
    irow = {r: k for k, r in enumerate(img.keep)}
    arow = {r: k for k, r in enumerate(aud.keep)}
    rows = torch.tensor([irow[i] for i in keep], dtype=torch.long)
    arows = torch.tensor([arow[i] for i in keep], dtype=torch.long)
    skipped = [(records[i].key, "; ".join(reasons[i])) for i in sorted(reasons)]
    return PairedSet(img.x[rows], aud.x[arows], keep, skipped)


def decode_one(path, cfg, modality: str) -> torch.Tensor:
    """One file as the run's cache would hold it ([1,C,H,W] uint8 or [1,S] int16); CorruptFileError is raised
    as DataError naming the file."""
    d = decode_all([Record(str(Path(path).expanduser()))], cfg, modality, workers=1, progress=False)
    if not d.keep:
        raise DataError(f"{path}: {d.skipped[0][1]}")
    return d.x


def _resolve(manifest: Path, name: str) -> str:
    f = Path(name).expanduser()
    return str((f if f.is_absolute() else manifest.parent / f).resolve())



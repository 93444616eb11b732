"""A Record names one example; nothing is decoded yet. A Source is the list of them with what kind they are."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".pbm", ".webp", ".tif", ".tiff", ".gif"}
AUDIO_EXTS = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au"}
# What data sets call their splits (folder names, manifest values) -> seehear's three names.
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
               "dev": "valid", "test": "test", "testing": "test", "eval": "test"}


@dataclass
class Record:
    path: str  # absolute path of the file that holds the example
    label: Optional[str] = None  # class name (None when predicting)
    group: Optional[str] = None  # speaker, subject, session ...: the unit a held-out split keeps together
    split: Optional[str] = None  # train | valid | test when the source says so
    transcript: Optional[str] = None  # what is said, for sources that have it (Kaldi text)
    member: Optional[int] = None  # index inside a container file (an IDX file holds many images)
    extra: dict = field(default_factory=dict)  # any further manifest columns

    @property
    def key(self) -> str:
        """Unique name of the example, stable across runs (used in saved splits and reports)."""
        return self.path if self.member is None else f"{self.path}#{self.member}"


@dataclass
class Source:
    records: list[Record]
    modality: str  # image | audio
    kind: str  # folder | manifest | kaldi | pattern | idx | files
    root: str  # what the user pointed at
    problems: list[str] = field(default_factory=list)  # non-fatal findings while listing (rows skipped, ...)

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.records if r.label is not None})

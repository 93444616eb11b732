"""Output units of a CTC transcriber: characters, or sentencepiece subwords learned from the training text.

Index 0 is always the CTC blank. Character units write the space between words as "|" (the word separator that
flashlight's decoder expects); sentencepiece pieces start a word with "▁". Units are saved in the run folder as
units.json (+ units.model for sentencepiece) and read back with `load_units`.
"""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Iterable

from seehear.atomic import atomic_write, write_json
from seehear.errors import ConfigError, DataError

BLANK = "<blank>"
SPACE = "|"
PIECE_START = "\u2581"  # ▁


def normalize_text(text: str) -> str:
    """The form transcripts are learned and scored in: NFC, one space between words, no outer spaces.
    Case is kept as the data has it (speechocean762 is upper case, espeak test data lower case)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


class Units:
    kind = "base"
    tokens: list[str]
    boundary: str

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def text(self, ids: Iterable[int]) -> str:
        """Text from already-collapsed unit ids (no repeats merged here, blanks dropped)."""
        pieces = [self.tokens[i] for i in ids if 0 < i < len(self.tokens)]
        s = "".join(pieces).replace(self.boundary, " ")
        return re.sub(r"\s+", " ", s).strip()

    def spell(self, word: str) -> list[str]:
        """The tokens of one word, for the decoder's lexicon."""
        raise NotImplementedError

    def unknown_chars(self, text: str) -> set[str]:
        return set()

    def save(self, run_dir: Path) -> None:
        raise NotImplementedError


class CharUnits(Units):
    kind = "char"
    boundary = SPACE

    def __init__(self, chars: Iterable[str]):
        chars = sorted(set(chars) - {" "})
        if SPACE in chars:
            raise DataError(f"transcripts contain {SPACE!r}, which character units use as the word separator")
        self.tokens = [BLANK, SPACE, *chars]
        self._index = {c: i for i, c in enumerate(self.tokens)}

    @classmethod
    def learn(cls, texts: Iterable[str]) -> "CharUnits":
        return cls({c for t in texts for c in normalize_text(t)})

    def encode(self, text: str) -> list[int]:
        # Characters the model has no unit for are dropped (callers report them with unknown_chars first).
        return [self._index[c] for c in normalize_text(text).replace(" ", SPACE) if c in self._index]

    def spell(self, word: str) -> list[str]:
        return [c for c in word if c in self._index]

    def unknown_chars(self, text: str) -> set[str]:
        return {c for c in normalize_text(text) if c != " " and c not in self._index}

    def save(self, run_dir: Path) -> None:
        write_json(Path(run_dir) / "units.json", {"kind": self.kind, "tokens": self.tokens})


class SentencePieceUnits(Units):
    kind = "sentencepiece"
    boundary = PIECE_START

    def __init__(self, model_file: str | Path):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        # sentencepiece's id 0 is <unk>: we put the CTC blank there, and never emit <unk>.
        self.tokens = [BLANK] + [self.sp.id_to_piece(i) for i in range(1, self.sp.get_piece_size())]

    @classmethod
    def learn(cls, texts: Iterable[str], vocab_size: int, out_dir: Path) -> "SentencePieceUnits":
        import io

        import sentencepiece as spm

        lines = [normalize_text(t) for t in texts if normalize_text(t)]
        if not lines:
            raise DataError("no transcripts to learn sentencepiece units from")
        n_chars = len({c for t in lines for c in t})
        # A unigram model cannot have fewer pieces than characters + specials, nor many more than the text allows.
        vocab = max(n_chars + 4, min(int(vocab_size), 4 * n_chars + 64))
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab,
                                           model_type="unigram", character_coverage=1.0, bos_id=-1, eos_id=-1,
                                           unk_id=0, hard_vocab_limit=False, minloglevel=2)
        except RuntimeError as e:
            raise ConfigError(f"sentencepiece could not learn {vocab} units from the transcripts: {e}") from None
        path = Path(out_dir) / "units.model"
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
        return cls(path)

    def encode(self, text: str) -> list[int]:
        return [i for i in self.sp.encode(normalize_text(text)) if i != 0]

    def spell(self, word: str) -> list[str]:
        return [p for p in self.sp.encode(word, out_type=str) if p in set(self.tokens)]

    def unknown_chars(self, text: str) -> set[str]:
        return {c for c in normalize_text(text) if c != " " and self.sp.piece_to_id(c) == 0
                and not any(c in t for t in self.tokens[1:])}

    def save(self, run_dir: Path) -> None:
        write_json(Path(run_dir) / "units.json", {"kind": self.kind, "tokens": self.tokens})
        target = Path(run_dir) / "units.model"
        if self.model_file.resolve() != target.resolve():
            data = self.model_file.read_bytes()
            atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))


def learn_units(texts: list[str], kind: str, vocab_size: int, run_dir: Path) -> Units:
    if kind == "char":
        return CharUnits.learn(texts)
    if kind == "sentencepiece":
        return SentencePieceUnits.learn(texts, vocab_size, run_dir)
    raise ConfigError(f"transcribe.units must be char or sentencepiece, got {kind!r}")


def load_units(run_dir: Path) -> Units:
    run_dir = Path(run_dir)
    f = run_dir / "units.json"
    if not f.is_file():
        raise DataError(f"{run_dir} has no units.json: it is not a transcription run")
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
        if d.get("kind") == "sentencepiece":
            return SentencePieceUnits(run_dir / "units.model")
        u = CharUnits(d["tokens"][2:])
    except (ValueError, KeyError, TypeError, AttributeError, OSError, RuntimeError) as e:
        raise DataError(f"{f} is damaged ({type(e).__name__}); train the run again") from None
    if u.tokens != d["tokens"]:
        raise DataError(f"{f} is damaged: its tokens do not form a character unit set")
    return u

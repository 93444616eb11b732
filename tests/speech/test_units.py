"""Output units: text -> ids -> text round trips, unknown characters, saving and loading."""
from __future__ import annotations

import pytest

from seehear.errors import DataError
from seehear.speech.units import BLANK, CharUnits, SentencePieceUnits, learn_units, load_units, normalize_text

TEXTS = ["WE CALL IT BEAR", "ZERO THREE FIVE ONE", "IT'S A NICE DAY", "THREE TWO TWO SEVEN"] * 10


def test_normalize_text():
    assert normalize_text("  two\t three \n") == "two three"


def test_char_units_roundtrip_and_unknown(tmp_path):
    u = CharUnits.learn(TEXTS)
    assert u.tokens[0] == BLANK and u.tokens[1] == "|" and "'" in u.tokens
    ids = u.encode("IT'S  A BEAR")
    assert 0 not in ids and u.text(ids) == "IT'S A BEAR"
    assert u.unknown_chars("HÉLLO 9") == {"É", "9"}
    assert u.text(u.encode("HÉLLO")) == "HLLO"  # unknown characters are dropped, not mapped to a wrong unit
    u.save(tmp_path)
    v = load_units(tmp_path)
    assert v.tokens == u.tokens and v.encode("BEAR") == u.encode("BEAR")


def test_char_units_refuse_the_separator():
    with pytest.raises(DataError, match="word separator"):
        CharUnits.learn(["a|b"])


def test_sentencepiece_units_roundtrip(tmp_path):
    u = learn_units(TEXTS, "sentencepiece", 40, tmp_path)
    assert isinstance(u, SentencePieceUnits) and u.tokens[0] == BLANK
    ids = u.encode("ZERO THREE BEAR")
    assert 0 not in ids and u.text(ids) == "ZERO THREE BEAR"
    assert len(u.encode("SEVEN")) < len("SEVEN")  # subwords: fewer units than letters for a frequent word
    assert "".join(u.spell("THREE")).replace("\u2581", "") == "THREE"
    u.save(tmp_path)
    v = load_units(tmp_path)
    assert v.kind == "sentencepiece" and v.tokens == u.tokens


def test_load_units_missing(tmp_path):
    with pytest.raises(DataError, match="not a transcription run"):
        load_units(tmp_path)

"""Hotwords in beam search, on constructed log-probabilities: a boosted word comes out where, without the boost,
it does not (in the vocabulary and acoustically a little less likely; or not in the vocabulary at all)."""
from __future__ import annotations

import types

import pytest
import torch

from seehear.errors import ConfigError
from seehear.speech.decoding import BeamDecoder, build_decoder
from seehear.speech.hotwords import hotword_boosts
from seehear.speech.ngram import build_arpa, vocabulary
from seehear.speech.units import CharUnits

TEXT = ["the cat sat on the mat", "the dog ran to the log", "a cat and a dog sat on a log",
        "the red cat ran to the mat", "a big dog sat on the mat", "the mat sat on the mat"]


def emissions(units, text, confuse=None):
    """[1, T, V] log-probs of `text` spelled out (2 frames a token, a blank after each); confuse: {token position:
    (other char, share)} makes those frames ambiguous."""
    ids = units.encode(text)
    p = torch.full((1 + 3 * len(ids), len(units)), 1e-4)
    p[:, 0] = 1.0
    for k, i in enumerate(ids):
        for t in (1 + 3 * k, 2 + 3 * k):
            p[t] = 1e-4
            p[t, i] = 1.0
            if confuse and k in confuse:
                other, share = confuse[k]
                p[t, i], p[t, units.tokens.index(other)] = 1.0 - share, share
    lp = (p / p.sum(-1, keepdim=True)).log()
    return lp[None], torch.tensor([lp.shape[0]])


@pytest.fixture(scope="module")
def chars():
    return CharUnits.learn(TEXT + ["zebra"])


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return build_arpa(TEXT * 3, tmp_path_factory.mktemp("lm") / "lm.arpa", order=3)


# "the mat sat" with the m frames 60/40 between m and c: heard as "mat", "cat" a close second
AMBIGUOUS = {4: ("c", 0.4)}


@pytest.mark.parametrize("with_lm,lexicon_free", [(False, False), (True, False), (True, True)])
def test_boost_brings_a_close_second_word_out(chars, lm, with_lm, lexicon_free):
    lp, n = emissions(chars, "the mat sat", AMBIGUOUS)
    kw = dict(lm_path=lm if with_lm else None, lexicon_words=None if with_lm else vocabulary(TEXT),
              lm_weight=0.5, lexicon_free=lexicon_free)
    assert BeamDecoder(chars, **kw).decode(lp, n)[0].text == "the mat sat"
    assert BeamDecoder(chars, **kw, hotwords={"cat": 0.0}).decode(lp, n)[0].text == "the mat sat"  # no boost
    boosted = BeamDecoder(chars, **kw, hotwords={"cat": 4.0}).decode(lp, n)[0]
    assert boosted.text == "the cat sat"
    assert [w["word"] for w in boosted.words] == ["the", "cat", "sat"]


def test_boost_does_not_turn_clear_speech_into_the_hotword(chars, lm):
    lp, n = emissions(chars, "the mat sat")  # no doubt about the m
    d = BeamDecoder(chars, lm_path=lm, lm_weight=0.5, hotwords={"cat": 4.0})
    assert d.decode(lp, n)[0].text == "the mat sat"


def test_a_hotword_outside_the_vocabulary_is_added_to_the_lexicon(chars, lm):
    lp, n = emissions(chars, "the zebra sat")
    plain = BeamDecoder(chars, lm_path=lm, lm_weight=0.5).decode(lp, n)[0].text
    assert "zebra" not in plain  # lexicon decoding cannot spell a word it does not know
    hot = BeamDecoder(chars, lm_path=lm, lm_weight=0.5, hotwords={"zebra": 2.0}).decode(lp, n)[0].text
    assert hot == "the zebra sat"


def test_settings_and_bad_hotwords(chars, lm, tmp_path):
    assert hotword_boosts(["cat", "red dog", "cat"], 3.0, chars) == {"cat": 3.0, "red": 3.0, "dog": 3.0}
    with pytest.raises(ConfigError, match="cannot be spelled"):
        hotword_boosts(["CAT"], 3.0, chars)  # the units are lower case
    with pytest.raises(ConfigError, match="cannot be spelled"):
        hotword_boosts(["cat9"], 3.0, chars)
    (tmp_path / "lm.arpa").write_text(lm.read_text())
    cfg = types.SimpleNamespace(decoder="beam", beam_size=16, lm_weight=0.5, word_score=0.0, hotwords=["cat"],
                                hotword_boost=4.0)
    lp, n = emissions(chars, "the mat sat", AMBIGUOUS)
    assert build_decoder(chars, cfg, tmp_path, 0.04).decode(lp, n)[0].text == "the cat sat"
    cfg.hotwords = []
    assert build_decoder(chars, cfg, tmp_path, 0.04).decode(lp, n)[0].text == "the mat sat"

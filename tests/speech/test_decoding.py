"""CTC decoding on synthetic log-probabilities built from known token paths."""
from __future__ import annotations

import random
import types

import jiwer
import pytest
import torch

from seehear.speech.decoding import BeamDecoder, GreedyDecoder, Hypothesis, build_decoder, greedy_decode
from seehear.speech.ngram import build_arpa, vocabulary
from seehear.speech.units import CharUnits, SentencePieceUnits

TEXT = ["the cat sat on the mat", "the dog ran to the log", "a cat and a dog sat on a log",
        "the red cat ran to the mat", "a big dog sat on the mat", "the cat ran to a big log"]
FS = 0.04


def path_emissions(units, ids, *, frames=2, gap=1, lead=1, noise=0.0, confuse=None, seed=0):
    """[T, V] log-probs: `lead` blanks, then each token for `frames` frames followed by `gap` blanks.
    confuse: {token position: (other id, share of the other)} makes those frames ambiguous."""
    g = torch.Generator().manual_seed(seed)
    T = lead + len(ids) * (frames + gap)
    p = torch.full((T, len(units)), 1e-4)
    p[:, 0] = 1.0
    t, spans = lead, []
    for k, i in enumerate(ids):
        for f in range(frames):
            p[t + f] = 1e-4
            p[t + f, i] = 1.0
            if confuse and k in confuse:
                other, share = confuse[k]
                p[t + f, i], p[t + f, other] = 1.0 - share, share
        spans.append((t, t + frames - 1))
        t += frames + gap
    lp = (p / p.sum(-1, keepdim=True)).log()
    return (lp + noise * torch.randn(lp.shape, generator=g)).log_softmax(-1), spans


@pytest.fixture(scope="module")
def chars():
    return CharUnits.learn(TEXT + ["zebra"])


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return build_arpa(TEXT * 3, tmp_path_factory.mktemp("lm") / "lm.arpa", order=3)


def one(units, text, **kw):
    lp, spans = path_emissions(units, units.encode(text), **kw)
    return lp[None], torch.tensor([lp.shape[0]]), spans


def test_greedy_recovers_text_and_word_times(chars):
    lp, n, spans = one(chars, "the cat sat", frames=3, noise=0.3)
    h = greedy_decode(lp, n, chars, FS)[0]
    assert h.text == "the cat sat"
    # "the" = tokens 0..2, "cat" = 4..6 ("|" is token 3): from the first frame of the first to the last of the last
    assert [w["word"] for w in h.words] == ["the", "cat", "sat"]
    assert h.words[0]["start"] == pytest.approx(spans[0][0] * FS) and h.words[0]["end"] == pytest.approx((spans[2][1] + 1) * FS)
    assert h.words[1]["start"] == pytest.approx(spans[4][0] * FS) and h.words[2]["end"] == pytest.approx((spans[10][1] + 1) * FS)
    assert h.score < 0


@pytest.mark.parametrize("lexicon_free", [False, True])
def test_beam_without_lm_equals_greedy_on_clear_input(chars, lexicon_free):
    lp, n, _ = one(chars, "a dog ran to the mat", noise=0.2, seed=3)
    g = greedy_decode(lp, n, chars, FS)[0]
    words = None if lexicon_free else vocabulary(TEXT)
    b = BeamDecoder(chars, lexicon_words=words, lexicon_free=lexicon_free, frame_seconds=FS).decode(lp, n)[0]
    assert b.text == g.text == "a dog ran to the mat"
    assert b.words == g.words


def _ambiguous(units):
    # "cat" or "hat"/"mat"? The acoustics lean to the wrong letter; "the ? sat on the mat" only knows "cat" there.
    ids = units.encode("the cat sat on the mat")
    k = ids.index(units.tokens.index("c"))
    return path_emissions(units, ids, confuse={k: (units.tokens.index("m"), 0.6)})


def test_lm_picks_the_word_the_acoustics_cannot(chars, lm):
    lp, _ = _ambiguous(chars)
    lp, n = lp[None], torch.tensor([lp.shape[0]])
    assert greedy_decode(lp, n, chars, FS)[0].text == "the mat sat on the mat"
    for free in (False, True):
        d = BeamDecoder(chars, lm_path=lm, lm_weight=1.0, lexicon_free=free, frame_seconds=FS)
        assert d.decode(lp, n)[0].text == "the cat sat on the mat", free


def test_lexicon_free_produces_a_word_outside_the_vocabulary(chars, lm):
    lp, n, _ = one(chars, "the zebra sat on the mat")
    free = BeamDecoder(chars, lm_path=lm, lexicon_free=True).decode(lp, n)[0]
    assert free.text == "the zebra sat on the mat"
    fixed = BeamDecoder(chars, lm_path=lm, lexicon_free=False).decode(lp, n)[0]
    assert "zebra" not in fixed.text and set(fixed.text.split()) <= set(vocabulary(TEXT))


def test_default_mode_has_the_lower_wer_on_in_vocabulary_speech(chars, lm):
    """Why lexicon decoding is the default: noisy, confusable letters in sentences of known words."""
    rng = random.Random(0)
    letters = [chars.tokens.index(c) for c in "acdegilmnorst"]
    refs, hyps = [], {False: [], True: []}
    decoders = {f: BeamDecoder(chars, lm_path=lm, lm_weight=1.0, lexicon_free=f) for f in (False, True)}
    for s in range(12):
        words = TEXT[s % len(TEXT)].split()
        rng.shuffle(words)  # sentences the LM has not seen, of words it knows
        ref = " ".join(words)
        ids = chars.encode(ref)
        confuse = {k: (rng.choice(letters), 0.55) for k in range(len(ids)) if ids[k] != 1 and rng.random() < 0.25}
        lp, _ = path_emissions(chars, ids, noise=0.5, confuse=confuse, seed=s)
        refs.append(ref)
        for f, d in decoders.items():
            hyps[f].append(d.decode(lp[None], torch.tensor([lp.shape[0]]))[0].text)
    wer = {f: jiwer.wer(refs, hyps[f]) for f in hyps}
    assert wer[False] < wer[True], wer


def test_batch_of_different_lengths_and_empty_input(chars, lm):
    texts = ["the cat sat", "a dog", "", "the red cat ran to the mat"]
    ems = [path_emissions(chars, chars.encode(t), noise=0.2, seed=i)[0] for i, t in enumerate(texts)]
    ems[2] = ems[2][:0]  # a zero-length utterance inside the batch
    T = max(len(e) for e in ems)
    batch = torch.full((len(ems), T, len(chars)), -30.0)
    batch[:, :, 0] = 0.0  # padding is confident garbage: only `lengths` may keep it out
    for b, e in enumerate(ems):
        batch[b, : len(e)] = e
    n = torch.tensor([len(e) for e in ems])
    for d in (GreedyDecoder(chars, FS), BeamDecoder(chars, lm_path=lm), BeamDecoder(chars, lm_path=lm, lexicon_free=True)):
        out = d.decode(batch, n)
        assert [h.text for h in out] == texts
        assert out[2] == Hypothesis("", [], 0.0)
        assert d.decode(batch[:, :0], torch.zeros(4, dtype=torch.long)) == [Hypothesis("")] * 4


def test_all_blank_output_is_empty_text(chars, lm):
    lp = torch.full((1, 20, len(chars)), -20.0)
    lp[..., 0] = 0.0
    n = torch.tensor([20])
    for d in (GreedyDecoder(chars), BeamDecoder(chars, lm_path=lm), BeamDecoder(chars, lm_path=lm, lexicon_free=True)):
        h = d.decode(lp, n)[0]
        assert h.text == "" and h.words == []


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    return SentencePieceUnits.learn(TEXT * 4, vocab_size=40, out_dir=tmp_path_factory.mktemp("sp"))


@pytest.mark.parametrize("frames", [1, 3])  # 3: a word's last piece lasts several frames
def test_sentencepiece_units_decode(pieces, lm, frames):
    text = "the dog sat on a big log"
    ids = pieces.encode(text)
    assert any(len(pieces.tokens[i]) > 2 for i in ids)  # real multi-letter pieces, not letters
    lp, spans = path_emissions(pieces, ids, frames=frames, noise=0.2)
    lp, n = lp[None], torch.tensor([lp.shape[0]])
    g = greedy_decode(lp, n, pieces, FS)[0]
    assert g.text == text and len(g.words) == 7
    assert g.words[0]["start"] == pytest.approx(spans[0][0] * FS)
    assert g.words[-1]["end"] == pytest.approx((spans[-1][1] + 1) * FS)
    for d in (BeamDecoder(pieces, lexicon_free=True), BeamDecoder(pieces, lm_path=lm),
              BeamDecoder(pieces, lm_path=lm, lexicon_free=True), BeamDecoder(pieces, lexicon_words=vocabulary(TEXT))):
        h = d.decode(lp, n)[0]
        assert h.text == text and h.words == g.words, (d.lexicon_free, h)


def test_build_decoder_follows_the_run_settings(chars, lm, tmp_path):
    cfg = types.SimpleNamespace(decoder="greedy", beam_size=8, lm_order=3, lm_weight=0.5, word_score=0.0, lm_text=None)
    assert isinstance(build_decoder(chars, cfg, tmp_path, FS), GreedyDecoder)
    cfg.decoder = "beam"
    d = build_decoder(chars, cfg, tmp_path, FS)
    assert d.lm_path is None and d.lexicon_free  # no lm.arpa in the run: nothing to build a lexicon from
    (tmp_path / "lm.arpa").write_bytes(lm.read_bytes())
    d = build_decoder(chars, cfg, tmp_path, FS)
    assert d.lm_path == tmp_path / "lm.arpa" and not d.lexicon_free
    assert build_decoder(chars, cfg, tmp_path, FS, lexicon_free=True).lexicon_free

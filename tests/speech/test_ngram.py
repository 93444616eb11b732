"""The n-gram builder: a valid ARPA file whose every context is a probability distribution, read alike by an
independent scorer written here, by the kenlm package and by flashlight's decoder."""
from __future__ import annotations

import math
import random

import kenlm
import pytest

from seehear.speech.ngram import build_arpa, vocabulary

WORDS = "the a cat dog sat ran on under mat log big small red".split()


def _text(n=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 7))) for _ in range(n)]


def _read_arpa(path):
    """{n: {ngram tuple: (log10 p, log10 bow)}} and the declared counts."""
    table, declared, n = {}, {}, 0
    for line in path.read_text().splitlines():
        if line.startswith("ngram "):
            k, v = line[6:].split("=")
            declared[int(k)] = int(v)
        elif line.endswith("-grams:"):
            n = int(line[1])
            table[n] = {}
        elif line and not line.startswith("\\") and n:
            parts = line.split("\t")
            table[n][tuple(parts[1].split(" "))] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else 0.0)
    return table, declared


def _logp(table, ctx, w):
    """ARPA back-off: log10 p(w | ctx) if listed, else log10 bow(ctx) + log10 p(w | ctx without its first word)."""
    ctx = tuple(ctx)[max(0, len(ctx) - (max(table) - 1)):]
    g = ctx + (w,)
    if g in table[len(g)]:
        return table[len(g)][g][0]
    assert ctx, f"{w} is not even a unigram"
    return table[len(ctx)].get(ctx, (0.0, 0.0))[1] + _logp(table, ctx[1:], w)


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    return build_arpa(_text(), tmp_path_factory.mktemp("lm") / "lm.arpa", order=3)


def test_header_counts_and_specials(arpa):
    text = arpa.read_text()
    assert text.lstrip().startswith("\\data\\") and text.rstrip().endswith("\\end\\")
    table, declared = _read_arpa(arpa)
    assert declared == {n: len(table[n]) for n in table} and set(declared) == {1, 2, 3}
    assert {("<s>",), ("</s>",), ("<unk>",)} <= set(table[1])
    assert table[1][("<s>",)][0] == -99.0  # <s> is never predicted
    assert -10 < table[1][("<unk>",)][0] < table[1][("cat",)][0]  # <unk> gets a little, less than a seen word
    assert vocabulary(_text()) == sorted(WORDS)


@pytest.mark.parametrize("ctx", [(), ("<s>",), ("the",), ("<s>", "cat"), ("cat", "sat"), ("red", "red"),
                                 ("nothing", "seen"), ("the", "nothing")])
def test_every_context_sums_to_one(arpa, ctx):
    table, _ = _read_arpa(arpa)
    ctx = tuple(w if (w,) in table[1] else "<unk>" for w in ctx)
    predicted = [*WORDS, "</s>", "<unk>"]
    total = sum(10 ** _logp(table, ctx, w) for w in predicted)
    assert total == pytest.approx(1.0, abs=1e-4)


def test_kenlm_reads_it_and_agrees(arpa):
    table, _ = _read_arpa(arpa)
    m = kenlm.Model(str(arpa))
    assert m.order == 3
    state, out = kenlm.State(), kenlm.State()
    m.BeginSentenceWrite(state)
    ctx = ["<s>"]
    for w in ["the", "cat", "sat", "on", "mat"]:
        assert m.BaseScore(state, w, out) == pytest.approx(_logp(table, ctx, w), abs=1e-4)
        state, out = out, state
        ctx.append(w)
    total = sum(10 ** m.BaseScore(state, w, out) for w in [*WORDS, "</s>", "<unk>"])
    assert total == pytest.approx(1.0, abs=1e-4)


def test_seen_sentences_score_higher_than_scrambled(tmp_path):
    seen = ["the cat sat on the mat", "a dog ran under the log", "the big red dog sat", "a small cat ran"] * 20
    m = kenlm.Model(str(build_arpa(seen + _text(100), tmp_path / "lm.arpa")))
    rng = random.Random(1)
    for s in set(seen):
        w = s.split()
        scrambled = w[:]
        while scrambled == w:
            rng.shuffle(scrambled)
        assert m.score(s) > m.score(" ".join(scrambled)) + 1.0


def test_loads_in_flashlight_decoder(arpa):
    from torchaudio.models.decoder import ctc_decoder

    tokens = ["-", "|", *sorted({c for w in WORDS for c in w})]
    lex = arpa.parent / "lexicon.txt"
    lex.write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in WORDS))
    ctc_decoder(lexicon=str(lex), tokens=tokens, lm=str(arpa))  # raises if KenLM cannot read the file


def test_normalises_and_handles_small_and_empty_text(tmp_path):
    p = build_arpa(["  Hello   world ", "", "hello <unk> world"], tmp_path / "a.arpa", order=4)
    table, declared = _read_arpa(p)
    assert ("Hello",) in table[1] and ("hello", "world") in table[2] and declared[4] >= 1
    assert [g for n in table for g in table[n] if "<unk>" in g] == [("<unk>",)]  # markup in the text is dropped
    with pytest.raises(Exception):
        build_arpa(["", "   "], tmp_path / "b.arpa")
    assert math.isclose(sum(10 ** _logp(table, ("Hello",), w) for w in ["Hello", "hello", "world", "</s>", "<unk>"]),
                        1.0, abs_tol=1e-4)

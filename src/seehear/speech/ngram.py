"""A word n-gram language model built from plain text and written as an ARPA file (read by flashlight's KenLM).

Interpolated modified Kneser-Ney, as KenLM's lmplz builds it (no lmplz binary is needed):
- the highest order, and n-grams starting with <s>, use raw counts; the other lower orders use continuation counts
  (how many different words precede the n-gram), which is what makes Kneser-Ney good at backing off;
- three discounts per order (for counts 1, 2, 3+) from the counts of counts (Chen & Goodman);
- every order is interpolated with the one below, unigrams with the uniform distribution over the vocabulary
  (words, </s>, <unk>), so <unk> gets the mass a never-seen word deserves;
- the ARPA backoff weight of a context is its interpolation weight, so p(w | c) = bow(c) * p(w | c') for unseen w,
  and the probabilities of every context sum to 1.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

from seehear.errors import DataError
from seehear.speech.units import normalize_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_SPECIAL = {BOS, EOS, UNK}
# Used when a small text has too few count-of-counts for the Chen-Goodman estimate (lmplz refuses such text).
_FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def _words(sentences: Iterable[str]) -> Iterable[list[str]]:
    for s in sentences:
        # The decoder's <s>, </s>, <unk> are markup, not words a transcript may contain.
        w = [x for x in normalize_text(s).split(" ") if x and x not in _SPECIAL]
        if w:
            yield w


def vocabulary(sentences: Iterable[str]) -> list[str]:
    """The distinct words of the text, sorted (no <s>, </s>, <unk>)."""
    return sorted({w for ws in _words(sentences) for w in ws})


def _discounts(adjusted: dict[tuple, int]) -> tuple[float, float, float]:
    t = Counter(c for c in adjusted.values() if c <= 4)
    t1, t2, t3, t4 = (t.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return _FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    # A discount must stay inside (0, count) or some probability turns negative.
    if not all(0 < dk < k for k, dk in zip((1, 2, 3), d)):
        return _FALLBACK_DISCOUNTS
    return d


def _log10(p: float) -> float:
    return math.log10(p) if p > 0 else -99.0


def build_arpa(sentences: Iterable[str], path: str | Path, order: int = 3) -> Path:
    """Write an interpolated modified Kneser-Ney word n-gram of the text (one sentence per item) to `path`."""
    if order < 1:
        raise DataError(f"an n-gram order must be at least 1, got {order}")
    # Words as ints: tuples of small ints hash and compare faster than tuples of strings.
    index: dict[str, int] = {BOS: 0, EOS: 1, UNK: 2}
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[n][ngram] for n = 1..order
    for ws in _words(sentences):
        ids = [0] + [index.setdefault(w, len(index)) for w in ws] + [1]
        for n in range(1, order + 1):
            raw[n].update(zip(*(ids[i:] for i in range(n))))  # Counter.update over an iterable runs in C
    if not raw[1]:
        raise DataError("no text to build a language model from")
    words = list(index)

    # Adjusted counts: raw at the top order and for <s>-initial n-grams, else continuation counts.
    adjusted: list[dict[tuple, int]] = [{} for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        a: dict[tuple, int] = defaultdict(int)
        for g in raw[n + 1]:
            a[g[1:]] += 1
        for g, c in raw[n].items():
            if g[0] == 0:
                a[g] = c
        adjusted[n] = dict(a)
    del adjusted[1][(0,)]  # <s> is never predicted: its unigram exists only for its backoff weight
    adjusted[1].setdefault((2,), 0)  # <unk>: no count, only the uniform share
    n_vocab = len(words) - 1  # everything a unigram can predict: words, </s>, <unk>

    prob: list[dict[tuple, float]] = [{} for _ in range(order + 1)]
    bow: list[dict[tuple, float]] = [{} for _ in range(order + 1)]
    for n in range(1, order + 1):
        d1, d2, d3 = _discounts({g: c for g, c in adjusted[n].items() if c > 0})
        total: dict[tuple, float] = defaultdict(float)
        mass: dict[tuple, float] = defaultdict(float)  # discounted mass of each context, given to the lower order
        for g, c in adjusted[n].items():
            if c == 0:
                continue
            ctx = g[:-1]
            total[ctx] += c
            mass[ctx] += d1 if c == 1 else d2 if c == 2 else d3
        gamma = {ctx: mass[ctx] / total[ctx] for ctx in total}
        p_n, lower = prob[n], prob[n - 1]
        for g, c in adjusted[n].items():
            ctx = g[:-1]
            disc = 0.0 if c == 0 else d1 if c == 1 else d2 if c == 2 else d3
            u = (c - disc) / total[ctx] if c else 0.0
            backed = 1.0 / n_vocab if n == 1 else lower[g[1:]]
            p_n[g] = u + gamma[ctx] * backed
        # The weight of a context sits on the (n-1)-gram that is the context.
        for ctx, gm in gamma.items():
            if ctx:
                bow[n - 1][ctx] = gm
    # <s> gets the usual log10 p = -99 and keeps its backoff weight.
    prob[1][(0,)] = 0.0

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("\n\\data\\\n")
        for n in range(1, order + 1):
            f.write(f"ngram {n}={len(prob[n])}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            b_n = bow[n] if n < order else {}
            for g in prob[n]:  # KenLM hashes the n-grams: no order is needed
                text = " ".join(words[i] for i in g)
                line = f"{_log10(prob[n][g]):.6f}\t{text}"
                if g in b_n:
                    line += f"\t{math.log10(b_n[g]):.6f}"
                elif n < order:
                    line += "\t0"
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    tmp.replace(path)
    return path

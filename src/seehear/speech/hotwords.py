"""Hotwords: words the beam search favours (names, product words, jargon the training text lacks or rarely has).

`transcribe.hotwords` (CLI: `seehear transcribe RUN AUDIO --hotword WORD`, repeatable) lists them and
`transcribe.hotword_boost` is the log-score each one gets whenever a hypothesis completes it, on top of the word
n-gram's score (and whatever the LM weight is). In lexicon decoding (the default) the boost is part of the word's
score in flashlight's lexicon trie, so smearing carries it to the word's first token: a hotword's hypotheses are
kept from the frame where the word begins, not only once it is complete. A hotword missing from the vocabulary is
added to the lexicon (spelled with the run's units) and scored by the n-gram as <unk>, plus the boost. In
lexicon-free decoding the boost is added when the word is closed. Greedy decoding has no search to steer.
"""
from __future__ import annotations

from pathlib import Path

from seehear.errors import ConfigError
from seehear.speech.units import Units, normalize_text


def hotword_boosts(words, boost: float, units: Units) -> dict[str, float]:
    """{word: boost} for the given hotwords (a phrase counts word by word), each checked against the units."""
    out: dict[str, float] = {}
    index = set(units.tokens)
    for raw in words or ():
        for w in normalize_text(str(raw)).split(" "):
            if not w:
                continue
            spelling = units.spell(w)
            if not spelling or not all(t in index for t in spelling) or units.text(
                    [units.tokens.index(t) for t in spelling]).replace(" ", "") != w:
                raise ConfigError(f"hotword {w!r} cannot be spelled with this run's units (it learned "
                                  f"{''.join(t for t in units.tokens[1:] if len(t) == 1)[:60]!r}; case matters)")
            out[w] = float(boost)
    return out


def boosted_word_lm(lm_path: Path | None, vocab: list[str], boosts: dict[str, float], lm_weight: float):
    """A word-level LM for flashlight's lexicon decoder: lm_weight x the n-gram's score (none without lm_path) plus
    each hotword's boost. `vocab` is the decoder's word dictionary in index order (<unk> included). The decoder
    must run with lm_weight 1: the weight is applied here, so that the boost does not scale with it."""
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

    bonus = [boosts.get(w, 0.0) for w in vocab]

    class BoostedWordLM(CTCDecoderLM):
        def __init__(self):
            CTCDecoderLM.__init__(self)
            self.kenlm = None
            if lm_path is not None:
                from flashlight.lib.text.decoder.kenlm import KenLM
                from flashlight.lib.text.dictionary import Dictionary

                self.kenlm = KenLM(str(lm_path), Dictionary(vocab))
            self.info: dict = {}  # state -> (KenLM state, score of reaching it); keeps the states alive

        def start(self, start_with_nothing: bool = False):
            self.info = {}
            root = CTCDecoderLMState()
            self.info[root] = (self.kenlm.start(start_with_nothing) if self.kenlm else None, 0.0)
            return root

        def score(self, state, word: int):
            child = state.child(word)
            if child not in self.info:
                ken = self.info[state][0]
                s = 0.0
                if self.kenlm is not None:
                    ken, s = self.kenlm.score(ken, word)
                self.info[child] = (ken, lm_weight * s + (bonus[word] if 0 <= word < len(bonus) else 0.0))
            return child, self.info[child][1]

        def finish(self, state):
            if self.kenlm is None:
                return state.child(-1), 0.0
            _, s = self.kenlm.finish(self.info[state][0])
            return state.child(-1), lm_weight * s

    return BoostedWordLM()

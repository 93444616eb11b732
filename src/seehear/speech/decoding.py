"""CTC decoding: greedy (best path), and beam search with a word n-gram (flashlight-text via torchaudio).

Two beam modes:
- lexicon: only words of the LM's vocabulary (each spelled with `units.spell`) can be produced; flashlight's trie
  scores every partial word with the best LM score it can still reach (smearing), so the LM steers the search
  from a word's first token.
- lexicon-free: any token sequence; a word is scored by the n-gram once it is complete (its boundary token, or the
  next word's "▁" piece), so words outside the vocabulary come out, paying the LM's <unk> probability.
The default is lexicon decoding (LEXICON_FREE_DEFAULT): it had the lower WER in our synthetic tests on text whose
words are in the vocabulary (the LM can repair a misheard letter only when the spelling is constrained, and
lexicon-free hypotheses are scored only at word ends, too late to keep the right spelling in the beam).

Word times come from the frames where a word's tokens are emitted: its first token's first frame to its last
token's last frame (the run of frames where that token stays the best one), in seconds via frame_seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seehear.speech.units import BLANK, SPACE, Units

LEXICON_FREE_DEFAULT = False
_PSEUDO_SIL = "<sil>"  # sentencepiece has no separator token: flashlight gets one the model never emits
_NEVER = -1.0e5  # its log-probability (finite: -inf turns into NaN in flashlight's score sums)
_UNK = "<unk>"


@dataclass
class Hypothesis:
    text: str
    words: list[dict] = field(default_factory=list)  # {"word", "start", "end"} in seconds
    score: float = 0.0


def _is_boundary(units: Units, tok: str) -> bool | None:
    """True: the token ends a word (char "|"); None: it starts one (sentencepiece "▁..."); False: neither."""
    if tok == SPACE and units.boundary == SPACE:
        return True
    if units.boundary != SPACE and tok.startswith(units.boundary):
        return None
    return False


def _group_words(units: Units, ids: list[int], first: list[int], last: list[int]):
    """Collapsed token ids with their first/last frames -> [(word, first frame, last frame)], split at boundaries."""
    out, cur = [], []

    def flush():
        if cur:
            w = units.text(i for i, _, _ in cur)
            if w:
                out.append((w, cur[0][1], cur[-1][2]))
            cur.clear()

    for i, a, b in zip(ids, first, last):
        kind = _is_boundary(units, units.tokens[i])
        if kind is True:
            flush()
            continue
        if kind is None:
            flush()
        cur.append((i, a, b))
    flush()
    return out


def _to_hypothesis(spans, frame_seconds: float, score: float) -> Hypothesis:
    words = [{"word": w, "start": round(a * frame_seconds, 3), "end": round((b + 1) * frame_seconds, 3)}
             for w, a, b in spans]
    return Hypothesis(" ".join(w["word"] for w in words), words, float(score))


def _run_end(best: torch.Tensor, t: int, tok: int) -> int:
    """Last frame of the run of `tok` as the best token starting at frame t (CTC emits it over those frames)."""
    end = t
    while end + 1 < len(best) and int(best[end + 1]) == tok:
        end += 1
    return end


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, units: Units,
                  frame_seconds: float) -> list[Hypothesis]:
    """Best path: the most likely token per frame, repeats merged, blanks dropped. log_probs [B, T, V]."""
    out = []
    if log_probs.shape[1] == 0:
        return [Hypothesis("") for _ in range(log_probs.shape[0])]
    scores, best = log_probs.detach().float().cpu().max(dim=-1)
    for b in range(log_probs.shape[0]):
        n = int(lengths[b])
        path = best[b, :n].tolist()
        ids, first, last = [], [], []
        for t, tok in enumerate(path):
            if tok != 0 and (t == 0 or path[t - 1] != tok):
                ids.append(tok)
                first.append(t)
                last.append(_run_end(best[b, :n], t, tok))
        out.append(_to_hypothesis(_group_words(units, ids, first, last), frame_seconds, scores[b, :n].sum()))
    return out


class GreedyDecoder:
    """greedy_decode behind the same `decode(log_probs, lengths)` as BeamDecoder."""

    def __init__(self, units: Units, frame_seconds: float = 0.04):
        self.units, self.frame_seconds = units, frame_seconds

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        return greedy_decode(log_probs, lengths, self.units, self.frame_seconds)


def arpa_words(path: str | Path) -> list[str]:
    """The words of an ARPA file's unigram section, without <s>, </s>, <unk>."""
    words, inside = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("\\"):
                if inside:
                    break
                inside = line == "\\1-grams:"
                continue
            if inside and line:
                w = line.split("\t")[1] if "\t" in line else line.split()[1]
                if w not in ("<s>", "</s>", _UNK):
                    words.append(w)
    return words


def _spelled_word_lm(lm_path: Path, units: Units, *, sil_id: int, lm_weight: float, word_score: float,
                     unk_score: float, boosts: dict[str, float] | None = None):
    """A word n-gram over a token stream, for lexicon-free decoding: tokens accumulate into the current word, and
    the word is scored by flashlight's KenLM once it ends. Hypotheses sharing a text share a state (children of
    one tree), which is how flashlight merges them."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

    vocab = [*arpa_words(lm_path), _UNK]
    word_id = {w: i for i, w in enumerate(vocab)}
    ends_word = [_is_boundary(units, t) is True or i == sil_id for i, t in enumerate(units.tokens)]
    starts_word = [_is_boundary(units, t) is None for t in units.tokens]
    # The decoder multiplies what the LM returns by lm_weight: the per-word scores are divided to stay as given.
    bonus = word_score / lm_weight
    unk_bonus = unk_score / lm_weight if math.isfinite(unk_score) else 0.0
    hot = {w: b / lm_weight for w, b in (boosts or {}).items()}  # hotwords (speech/hotwords.py)

    class SpelledWordLM(CTCDecoderLM):
        def __init__(self):
            CTCDecoderLM.__init__(self)
            self.kenlm = KenLM(str(lm_path), Dictionary(vocab))
            self.info: dict = {}  # state -> (KenLM state, token ids of the unfinished word); keeps states alive

        def _close(self, state, ken, word):
            if not word:
                return ken, 0.0
            w = units.text(word).replace(" ", "")
            i = word_id.get(w)
            ken, s = self.kenlm.score(ken, word_id[_UNK] if i is None else i)
            return ken, s + bonus + (unk_bonus if i is None else 0.0) + hot.get(w, 0.0)

        def start(self, start_with_nothing: bool = False):
            self.info = {}  # one utterance at a time: the previous one's states can go
            root = CTCDecoderLMState()
            self.info[root] = (self.kenlm.start(False), (), 0.0)
            return root

        def score(self, state, token: int):
            if token < len(ends_word) and ends_word[token]:
                ken, word = self.info[state][:2]
                if not word:
                    return state, 0.0  # a second separator changes nothing: same text, same state
                child = state.child(token)
                if child not in self.info:
                    ken2, s = self._close(state, ken, word)
                    self.info[child] = (ken2, (), s)
                return child, self.info[child][2]
            child = state.child(token)
            if child not in self.info:
                ken, word = self.info[state][:2]
                s = 0.0
                if starts_word[token] and word:  # "▁" starts the next word: the previous one is complete
                    ken, s = self._close(state, ken, word)
                    word = ()
                self.info[child] = (ken, word + (token,), s)
            return child, self.info[child][2]

        def finish(self, state):
            ken, word = self.info[state][:2]
            ken, s = self._close(state, ken, word)
            ken, s_end = self.kenlm.finish(ken)
            return state.child(-1), s + s_end

    return SpelledWordLM()


class BeamDecoder:
    def __init__(self, units: Units, *, beam_size: int = 32, lm_path: str | Path | None = None,
                 lexicon_words: list[str] | None = None, lm_weight: float = 0.5, word_score: float = 0.0,
                 frame_seconds: float = 0.04, unk_score: float = float("-inf"), lexicon_free: bool | None = None,
                 beam_threshold: float = 25.0, hotwords: dict[str, float] | None = None):
        """hotwords: {word: boost} (speech/hotwords.py): added to the lexicon, favoured by `boost` in log-score."""
        from torchaudio.models.decoder import ctc_decoder

        from seehear.errors import ConfigError
        from seehear.speech.hotwords import boosted_word_lm

        self.units, self.frame_seconds = units, frame_seconds
        self.lm_path = Path(lm_path) if lm_path else None
        if self.lm_path is not None and not self.lm_path.is_file():
            raise FileNotFoundError(f"language model {self.lm_path} does not exist")
        if lexicon_words is None and self.lm_path is not None:
            lexicon_words = arpa_words(self.lm_path)
        self.lexicon_free = LEXICON_FREE_DEFAULT if lexicon_free is None else lexicon_free
        hotwords = dict(hotwords or {})
        if not lexicon_words:
            self.lexicon_free = True  # no vocabulary to restrict to
        if hotwords and self.lexicon_free and (self.lm_path is None or lm_weight <= 0):
            raise ConfigError("hotwords in lexicon-free decoding need a language model and transcribe.lm_weight > 0 "
                              "(or use lexicon decoding, the default)")
        self.sil = SPACE if units.boundary == SPACE else _PSEUDO_SIL
        self.pad = self.sil == _PSEUDO_SIL  # one extra emission column for the pseudo separator
        tokens = list(units.tokens) + ([_PSEUDO_SIL] if self.pad else [])
        self.sil_id = tokens.index(self.sil)
        common = dict(tokens=tokens, beam_size=beam_size, beam_threshold=beam_threshold, lm_weight=lm_weight,
                      blank_token=BLANK, sil_token=self.sil, unk_word=_UNK, nbest=1)
        self._spell: dict[str, list[int]] = {}
        self.extra_frame = int(not self.lexicon_free and self.sil == SPACE)
        if self.lexicon_free:
            lm = None
            if self.lm_path is not None and lm_weight > 0:
                lm = _spelled_word_lm(self.lm_path, units, sil_id=self.sil_id, lm_weight=lm_weight,
                                      word_score=word_score, unk_score=unk_score, boosts=hotwords)
            # Python LM calls cost per (hypothesis, token, frame): only the few likeliest tokens of a frame matter.
            self._decoder = ctc_decoder(lexicon=None, lm=lm, beam_size_token=min(len(tokens), 12), **common)
            self._lm = lm  # the decoder keeps a raw pointer: the Python object must outlive it
        else:
            import tempfile

            index = {t: i for i, t in enumerate(units.tokens)}
            with tempfile.TemporaryDirectory() as tmp:
                lex, words = Path(tmp) / "lexicon.txt", Path(tmp) / "words.txt"
                with lex.open("w", encoding="utf-8") as f:
                    for w in dict.fromkeys([*(lexicon_words or []), *hotwords]):
                        spelling = units.spell(w)
                        if spelling and all(t in index for t in spelling):
                            self._spell[w] = [index[t] for t in spelling]
                            # Chars: a word ends with "|", so its last letter can last several frames inside the
                            # trie (at the root, a repeated frame could only be read as the separator).
                            tail = f" {SPACE}" if self.sil == SPACE else ""
                            f.write(f"{w}\t{' '.join(spelling)}{tail}\n")
                vocab = [*self._spell, _UNK]
                words.write_text("\n".join(vocab) + "\n", encoding="utf-8")
                lm = str(self.lm_path) if self.lm_path else None
                if hotwords:  # the n-gram's score x lm_weight + the boosts, from one Python LM (weight 1 here)
                    lm = boosted_word_lm(self.lm_path, vocab, hotwords, lm_weight)
                    common["lm_weight"] = 1.0
                self._lm = lm  # the decoder keeps a raw pointer: the Python object must outlive it
                self._decoder = ctc_decoder(lexicon=str(lex), lm=lm, lm_dict=str(words), word_score=word_score,
                                            unk_score=unk_score, sil_score=1e-3 if self.pad else 0.0, **common)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        """log_probs [B, T, V] (log-softmax over units), lengths [B] valid frames of each."""
        B, T, _ = log_probs.shape
        if T == 0:
            return [Hypothesis("") for _ in range(B)]
        em = log_probs.detach().float().cpu()
        lengths = lengths.detach().cpu().long().clamp(0, T)
        best = em.argmax(-1)
        out = []
        for b in range(B):
            n = int(lengths[b])
            if n == 0:
                out.append(Hypothesis(""))
                continue
            hyps = self._decoder(self._emissions(em[b, :n]), torch.tensor([n + self.extra_frame]))[0]
            if not hyps:
                out.append(Hypothesis(""))
                continue
            h = hyps[0]
            # torchaudio's timesteps index flashlight's path, which has the start state before frame 0.
            toks = [(int(i), int(t) - 1) for i, t in zip(h.tokens.tolist(), h.timesteps.tolist())
                    if 0 <= int(t) - 1 < n and (not self.pad or int(i) != self.sil_id)]
            toks = [(i, t, _run_end(best[b, :n], t, i)) for i, t in toks]
            if self.lexicon_free:
                spans = _group_words(self.units, *map(list, zip(*toks))) if toks else []
            else:
                spans = self._lexicon_spans(h.words, toks)
            out.append(_to_hypothesis(spans, self.frame_seconds, h.score))
        return out

    def _emissions(self, em: torch.Tensor) -> torch.Tensor:
        """[T, V] -> [1, T', V'] as flashlight needs them for this mode (see __init__)."""
        if self.pad:
            # Between words the lexicon decoder stays at the trie root by emitting the separator; a word's last
            # piece repeated over frames needs that too, so the pseudo separator scores "the token of the previous
            # frame goes on": max over tokens of min(this frame, previous frame), never at frame 0. A one-piece
            # word could instead start again at the third frame of its piece: a hair of sil_score breaks that tie.
            col = em.new_full((len(em),), _NEVER)
            if not self.lexicon_free and len(em) > 1:
                col[1:] = torch.minimum(em[1:, 1:], em[:-1, 1:]).amax(-1)
            em = torch.cat([em, col[:, None]], dim=-1)
        if self.extra_frame:
            # Lexicon words end with "|" (flashlight's canonical CTC lexicon): one certain "|" frame at the end lets
            # the last word finish even though models are not trained to emit a final "|".
            last = em.new_full((1, em.shape[1]), _NEVER)
            last[0, self.sil_id] = 0.0
            em = torch.cat([em, last])
        return em[None].contiguous()

    def _lexicon_spans(self, words: list[str], toks: list[tuple[int, int, int]]):
        """Cut the emitted tokens into the decoded words by their spellings (words need not be separated)."""
        spans, k = [], 0
        for j, w in enumerate(words):
            while k < len(toks) and toks[k][0] == self.sil_id:
                k += 1
            if w in self._spell:
                part = toks[k:k + len(self._spell[w])]
            else:  # <unk> (finite unk_score): its tokens run to the next separator, leaving the later words theirs
                need = sum(len(self._spell.get(x, [])) for x in words[j + 1:])
                stop = k
                while stop < len(toks) - need and toks[stop][0] != self.sil_id:
                    stop += 1
                part = toks[k:stop]
                w = self.units.text(i for i, _, _ in part) or _UNK
            k += len(part)
            if part:
                spans.append((w, part[0][1], part[-1][2]))
        return spans


def build_decoder(units: Units, cfg_transcribe, run_dir: str | Path, frame_seconds: float,
                  lexicon_free: bool | None = None):
    """The decoder a run's settings ask for: greedy, or beam search with RUN/lm.arpa when the run has one (and the
    settings' hotwords; greedy decoding has no search for them to steer)."""
    if cfg_transcribe.decoder == "greedy":
        return GreedyDecoder(units, frame_seconds)
    if cfg_transcribe.decoder != "beam":
        from seehear.errors import ConfigError

        raise ConfigError(f"transcribe.decoder must be greedy or beam, got {cfg_transcribe.decoder!r}")
    from seehear.speech.hotwords import hotword_boosts

    lm = Path(run_dir) / "lm.arpa"
    hot = hotword_boosts(getattr(cfg_transcribe, "hotwords", None), getattr(cfg_transcribe, "hotword_boost", 0.0),
                         units)
    return BeamDecoder(units, beam_size=cfg_transcribe.beam_size, lm_path=lm if lm.is_file() else None,
                       lm_weight=cfg_transcribe.lm_weight, word_score=cfg_transcribe.word_score,
                       frame_seconds=frame_seconds, lexicon_free=lexicon_free, hotwords=hot)

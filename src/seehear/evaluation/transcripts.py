"""Transcription metrics: word and character error rates (jiwer), overall and per speaker / group."""
from __future__ import annotations

from collections import defaultdict

from seehear.speech.units import normalize_text


def _rates(refs: list[str], hyps: list[str]) -> dict:
    import jiwer

    # jiwer refuses empty references; an empty reference with output counts every output word as inserted
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    inserted = sum(len(h.split()) for r, h in zip(refs, hyps) if not r)
    if not pairs:
        return {"wer": float(inserted > 0), "cer": float(inserted > 0), "words": 0, "utterances": len(refs)}
    r, h = zip(*pairs)
    w = jiwer.process_words(list(r), list(h))
    words = w.hits + w.substitutions + w.deletions
    c = jiwer.process_characters(list(r), list(h))
    chars = c.hits + c.substitutions + c.deletions
    return {"wer": (w.substitutions + w.deletions + w.insertions + inserted) / max(1, words),
            "cer": (c.substitutions + c.deletions + c.insertions) / max(1, chars),
            "substitutions": w.substitutions, "deletions": w.deletions, "insertions": w.insertions + inserted,
            "words": words, "utterances": len(refs),
            "sentence_error_rate": sum(a != b for a, b in zip(refs, hyps)) / len(refs)}


def utterance_errors(refs: list[str], hyps: list[str]) -> tuple[list[int], list[int]]:
    """Word errors (substitutions + deletions + insertions) and reference words of each utterance, after the same
    normalisation as transcript_metrics: summed over any set of utterances they give that set's WER, which is what
    a bootstrap over speakers resamples. An empty reference counts its output words as insertions."""
    import jiwer

    refs = [normalize_text(r) for r in refs]
    hyps = [normalize_text(h) for h in hyps]
    errors, words = [len(h.split()) if not r else 0 for r, h in zip(refs, hyps)], [len(r.split()) for r in refs]
    spoken = [i for i, r in enumerate(refs) if r]
    if spoken:
        out = jiwer.process_words([refs[i] for i in spoken], [hyps[i] for i in spoken])
        for i, chunks in zip(spoken, out.alignments):
            errors[i] = sum(c.ref_end_idx - c.ref_start_idx if c.type in ("substitute", "delete") else
                            c.hyp_end_idx - c.hyp_start_idx if c.type == "insert" else 0 for c in chunks)
    return errors, words


def transcript_metrics(refs: list[str], hyps: list[str], groups: list[str | None] | None = None,
                       keys: list[str] | None = None, examples: int = 20) -> dict:
    """WER/CER over all utterances (word-weighted, as jiwer and NIST sclite count them), per group, and the
    worst-scoring examples for the report."""
    refs = [normalize_text(r) for r in refs]
    hyps = [normalize_text(h) for h in hyps]
    out = _rates(refs, hyps)
    if groups and any(groups):
        by: dict[str, list[int]] = defaultdict(list)
        for i, g in enumerate(groups):
            by[str(g)].append(i)
        out["per_group"] = {g: {k: v for k, v in _rates([refs[i] for i in ix], [hyps[i] for i in ix]).items()
                                if k in ("wer", "cer", "words", "utterances")} for g, ix in sorted(by.items())}
    wrong = [i for i in range(len(refs)) if refs[i] != hyps[i]]
    out["examples"] = [{"key": keys[i] if keys else i, "reference": refs[i], "hypothesis": hyps[i]}
                       for i in wrong[:examples]]
    return out


def format_transcript_metrics(m: dict) -> str:
    lines = [f"WER {100 * m['wer']:.2f}%   CER {100 * m['cer']:.2f}%   ({m.get('utterances', 0)} utterances, "
             f"{m.get('words', 0)} words)"]
    per = m.get("per_group") or {}
    if per:
        worst = sorted(per.items(), key=lambda kv: -kv[1]["wer"])[:5]
        lines.append("worst speakers: " + ", ".join(f"{g} {100 * v['wer']:.1f}%" for g, v in worst))
    return "\n".join(lines)

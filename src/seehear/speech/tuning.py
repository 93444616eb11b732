"""The beam search's LM weight and word insertion score, chosen on held-out utterances (the validation split at
the end of training), as Kaldi and NeMo recipes tune them: the acoustic scores are computed once, then decoded on
a small grid, and the setting with the lowest WER wins (ties: the one nearest the configured values).
"""
from __future__ import annotations

import itertools

import torch

from seehear.evaluation.transcripts import transcript_metrics

LM_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
WORD_SCORES = (-1.0, 0.0, 1.0, 2.0)


def tune_decoding(loaded, waves: list[torch.Tensor], refs: list[str]) -> dict:
    """{"tuned": {lm_weight, word_score}, "valid_wer": ..., "default_wer": ..., "grid": [...]} for a beam
    decoder with an LM; {"skipped": why} when there is nothing to tune."""
    s = loaded.settings
    if s["decoder"] != "beam" or not (loaded.run_dir / "lm.arpa").is_file():
        return {"skipped": "greedy decoding or no language model: nothing to tune"}
    if not waves:
        return {"skipped": "no validation utterances to tune the decoder on"}
    scored = list(loaded.scores(waves))
    grid = []
    for lm_weight, word_score in itertools.product(LM_WEIGHTS, WORD_SCORES):
        decoder = loaded.decoder_for({**s, "lm_weight": lm_weight, "word_score": word_score})
        hyps = [""] * len(waves)
        for rows, log_probs, n in scored:
            for k, h in enumerate(decoder.decode(log_probs, n)):
                hyps[rows[k]] = h.text
        wer = transcript_metrics(refs, hyps)["wer"]
        grid.append({"lm_weight": lm_weight, "word_score": word_score, "wer": round(float(wer), 5)})
    near = lambda g: abs(g["lm_weight"] - s["lm_weight"]) + abs(g["word_score"] - s["word_score"])  # noqa: E731
    best = min(grid, key=lambda g: (g["wer"], near(g)))
    default = next((g["wer"] for g in grid if g["lm_weight"] == s["lm_weight"] and
                    g["word_score"] == s["word_score"]), None)
    return {"tuned": {"lm_weight": best["lm_weight"], "word_score": best["word_score"]},
            "valid_wer": best["wer"], "default_wer": default, "utterances": len(waves), "grid": grid}

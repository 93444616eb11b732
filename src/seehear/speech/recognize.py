"""A trained transcription run, loaded: the acoustic model, its output units and the decoder the run asks for
(greedy, or beam search with the run's n-gram), and `recognize(waves)` for whole recordings batched by length.
Used by the transcribe task, streaming and the server alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from seehear.config import RunConfig
from seehear.data.decode import pcm_to_float
from seehear.engine.checkpoint import load_weights, read_json
from seehear.errors import RunError
from seehear.models.transcriber import Transcriber, build_transcriber
from seehear.speech.units import Units, load_units


@dataclass
class LoadedTranscriber:
    run_dir: Path
    model: Transcriber
    units: Units
    cfg: RunConfig
    meta: dict
    decoder_kind: str | None = None
    hotwords: list[str] | None = None  # replaces transcribe.hotwords (speech/hotwords.py) when given

    def __post_init__(self):
        tc = self.cfg.transcribe
        tuned = (self.meta.get("decoding") or {}).get("tuned") or {}
        # the LM weight and word score tuned on the validation split at the end of training (if any)
        self.settings = {**tc.__dict__, **tuned, **({"decoder": self.decoder_kind} if self.decoder_kind else {}),
                         **({"hotwords": list(self.hotwords)} if self.hotwords is not None else {})}
        self.decoder_name = self.settings["decoder"]
        self.decoder = self.decoder_for(self.settings)

    def decoder_for(self, settings: dict):
        from seehear.speech.decoding import build_decoder

        return build_decoder(self.units, type(self.cfg.transcribe)(**settings), self.run_dir,
                             self.model.frame_seconds)

    @torch.inference_mode()
    def scores(self, waves: list[torch.Tensor], max_batch_samples: int = 16000 * 120):
        """Unit log-probabilities of whole waveforms (float or int16 1-D tensors), batched by length: yields
        (indices into waves, log_probs [B, T, V], lengths [B])."""
        self.model.eval()
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        i = 0
        while i < len(order):
            longest = max(1, len(waves[order[i]]))
            j = i + 1
            while j < len(order) and len(waves[order[j]]) * (j - i + 1) <= max_batch_samples:
                j += 1
            rows = order[i:j]
            lens = torch.tensor([len(waves[r]) for r in rows])
            x = torch.zeros(len(rows), max(longest, int(lens.max())))
            for k, r in enumerate(rows):
                w = waves[r]
                x[k, : len(w)] = pcm_to_float(w)
            log_probs, n = self.model(x, lens)
            yield rows, log_probs, n
            i = j

    def recognize(self, waves: list[torch.Tensor], max_batch_samples: int = 16000 * 120) -> list:
        """Hypotheses for whole waveforms, with the run's decoder."""
        out: list = [None] * len(waves)
        for rows, log_probs, n in self.scores(waves, max_batch_samples):
            for k, h in enumerate(self.decoder.decode(log_probs, n)):
                out[rows[k]] = h
        return out


def load_transcriber(run, decoder: str | None = None, hotwords: list[str] | None = None) -> LoadedTranscriber:
    run_dir = Path(run)
    if not (run_dir / "meta.json").is_file():
        raise RunError(f"{run_dir} is not a run folder (no meta.json)")
    meta = read_json(run_dir / "meta.json")
    if meta.get("task") != "transcribe":
        raise RunError(f"{run_dir} is a {meta.get('task', 'classify')} run, not a transcription run: "
                       f"use `seehear predict` for it")
    if not (run_dir / "model.safetensors").is_file():
        raise RunError(f"{run_dir} holds an unfinished run; finish it with `seehear train ... --resume`")
    cfg = RunConfig.from_dict(meta["config"])
    units = load_units(run_dir)
    model = build_transcriber(cfg, units.tokens)
    missing, unexpected = model.load_state_dict(load_weights(run_dir / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise RunError(f"{run_dir}/model.safetensors does not fit the model in meta.json")
    model.eval()
    return LoadedTranscriber(run_dir, model, units, cfg, meta, decoder, hotwords)

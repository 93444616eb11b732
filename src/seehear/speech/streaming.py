"""Transcription of audio that arrives in chunks (a microphone, a socket), with a model trained for limited
look-ahead (`lstm_ctc_stream`: a left-to-right LSTM that sees 3 output frames = 120 ms of the future).

    s = StreamingTranscriber("runs/asr-stream")
    for chunk in chunks:                 # float32 or int16 samples at the run's rate, any size (100-200 ms suits)
        update = s.feed(chunk)           # {"partial": text so far of the open utterance, "final": [closed ones]}
    last = s.finish()                    # flushes the look-ahead; closes the last utterance

Exactness: features are computed frame by frame as samples arrive (the same centred STFT frames as offline), and
the model carries its LSTM state, so the unit scores equal those of the offline pass of the same model (and so
does greedy text); beam search with the n-gram runs per closed utterance.
Memory is bounded: samples are dropped once framed, and unit scores are kept only for the open utterance, which
is closed (beam-decoded, emitted as final) after `endpoint_seconds` of blank output.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from seehear.errors import ConfigError
from seehear.features.audio import LOG_EPS


class StreamingTranscriber:
    def __init__(self, run, *, decoder: str | None = None, endpoint_seconds: float = 0.8, loaded=None):
        from seehear.tasks.transcribe import load

        self.t = loaded or load(run, decoder)
        acoustic = self.t.model.acoustic
        if not hasattr(acoustic, "step"):
            raise ConfigError(f"{self.t.cfg.model.name} reads whole utterances and cannot stream; train a "
                              f"streaming model: seehear train DATA --task transcribe --model lstm_ctc_stream")
        if self.t.model.normalize != "none":
            raise ConfigError("streaming needs audio.normalize=none (per-utterance statistics are not known "
                              "until the utterance ends); the lstm_ctc_stream recipe sets it")
        fe = self.t.model.frontend
        self.fe, self.acoustic = fe, acoustic
        self.pad, self.hop, self.n_fft = fe.n_fft // 2, fe.hop_length, fe.n_fft
        self.stack = acoustic.frame_factor
        self.endpoint_frames = max(1, int(round(endpoint_seconds / self.t.model.frame_seconds)))
        self.reset()

    def reset(self) -> None:
        self.buf = torch.zeros(0)  # samples not yet framed (with the left reflect padding once started)
        self.started = False
        self.total = 0  # samples received
        self.frames_done = 0
        self.pending = torch.zeros(1, 1, self._bands(), 0)  # feature frames waiting for a full stack
        self.state = None
        self.open: list[torch.Tensor] = []  # log-probs of the open utterance
        self.open_start = 0  # output frame where it began
        self.out_frames = 0
        self.compute_seconds = 0.0

    def _bands(self) -> int:
        return getattr(self.fe, "n_mfcc", None) or self.fe.n_mels

    # --- features -----------------------------------------------------------------------------------------------
    def _frames(self, padded: torch.Tensor, count: int) -> torch.Tensor:
        """`count` feature frames from padded samples, [1, 1, F, count] (what the offline front end computes)."""
        seg = padded[: (count - 1) * self.hop + self.n_fft]
        spec = torch.stft(seg[None], self.n_fft, self.hop, self.n_fft, self.fe.window, center=False,
                          return_complex=True)
        f = torch.log(self.fe.fbank.t() @ spec.abs().square() + LOG_EPS)
        if hasattr(self.fe, "dct"):
            f = (f.transpose(1, 2) @ self.fe.dct).transpose(1, 2)
        return f[:, None]

    def _take_frames(self, final: bool) -> torch.Tensor:
        if not self.started:
            return self.pending.new_zeros(1, 1, self._bands(), 0)
        buf = self.buf
        if final:  # the offline front end reflects the end of the recording
            mode = "reflect" if len(buf) > self.pad else "constant"
            buf = torch.nn.functional.pad(buf[None, None], (0, self.pad), mode=mode)[0, 0]
            total_frames = 1 + self.total // self.hop
            count = total_frames - self.frames_done
        else:
            count = max(0, (len(buf) - self.n_fft) // self.hop + 1)
        if count <= 0:
            return self.pending.new_zeros(1, 1, self._bands(), 0)
        f = self._frames(buf, count)
        self.frames_done += count
        self.buf = buf[count * self.hop:]
        return f

    # --- API ----------------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def feed(self, chunk) -> dict:
        t0 = time.perf_counter()
        x = torch.as_tensor(np.asarray(chunk))
        x = x.float() / 32767.0 if x.dtype == torch.int16 else x.float()
        x = x.reshape(-1)
        self.total += len(x)
        self.buf = torch.cat([self.buf, x])
        if not self.started and len(self.buf) > self.pad:  # reflect-pad the start, as offline
            self.buf = torch.nn.functional.pad(self.buf[None, None], (self.pad, 0), mode="reflect")[0, 0]
            self.started = True
        finals = self._advance(self._take_frames(final=False))
        self.compute_seconds += time.perf_counter() - t0
        return {"partial": self._partial(), "final": finals}

    @torch.inference_mode()
    def finish(self) -> dict:
        t0 = time.perf_counter()
        if not self.started and self.total:  # shorter than half a window: as offline, zero-padded
            self.buf = torch.nn.functional.pad(self.buf, (self.pad, 0))
            self.started = True
        finals = self._advance(self._take_frames(final=True), last=True)
        if self.state is not None:
            finals += self._emit(self.acoustic.flush(self.state), close=True)
        elif self.open:
            finals += self._emit(None, close=True)
        self.compute_seconds += time.perf_counter() - t0
        return {"partial": "", "final": finals}

    def _advance(self, frames: torch.Tensor, last: bool = False) -> list[dict]:
        self.pending = torch.cat([self.pending, frames], dim=-1)
        usable = self.pending.shape[-1] if last else self.pending.shape[-1] // self.stack * self.stack
        if usable == 0:
            return []
        x, self.pending = self.pending[..., :usable], self.pending[..., usable:]
        logits, self.state = self.acoustic.step(x, self.state)
        return self._emit(logits)

    def _emit(self, logits, close: bool = False) -> list[dict]:
        if logits is not None and logits.shape[1]:
            self.open.append(torch.log_softmax(logits.float(), dim=-1)[0])
            self.out_frames += logits.shape[1]
        if not self.open:
            return []
        lp = torch.cat(self.open)
        best = lp.argmax(-1)
        nonblank = (best != 0).nonzero()
        if not len(nonblank) and not close and len(lp) > self.endpoint_frames:
            # nothing said yet: keep only a little leading silence (memory stays bounded in long pauses)
            drop = len(lp) - self.endpoint_frames
            self.open, self.open_start = [lp[drop:]], self.open_start + drop
            return []
        silent_tail = len(best) - (int(nonblank[-1]) + 1) if len(nonblank) else len(best)
        if not close and not (len(nonblank) and silent_tail >= self.endpoint_frames):
            return []
        self.last_log_probs = lp  # the closed utterance's unit scores (for checks against the offline pass)
        hyp = self.t.decoder.decode(lp[None], torch.tensor([len(lp)]))[0] if len(nonblank) else None
        start = self.open_start * self.t.model.frame_seconds
        self.open, self.open_start = [], self.out_frames
        if hyp is None or not hyp.text:
            return []
        return [{"start": round(start, 3), "end": round(self.out_frames * self.t.model.frame_seconds, 3),
                 "text": hyp.text, "words": [{**w, "start": round(start + w["start"], 3),
                                              "end": round(start + w["end"], 3)} for w in hyp.words]}]

    def _partial(self) -> str:
        if not self.open:
            return ""
        best = torch.cat(self.open).argmax(-1).tolist()
        ids = [t for i, t in enumerate(best) if t != 0 and (i == 0 or t != best[i - 1])]
        return self.t.units.text(ids)

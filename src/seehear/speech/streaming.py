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
is closed (beam-decoded, emitted as final) after `endpoint_seconds` of blank output, or when it reaches
`max_utterance_seconds` (default transcribe.max_seconds) without a pause.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from seehear.data.decode import pcm_to_float
from seehear.engine.ctc import ctc_collapse
from seehear.errors import ConfigError
from seehear.speech.recognize import load_transcriber


class StreamingTranscriber:
    def __init__(self, run, *, decoder: str | None = None, endpoint_seconds: float = 0.8, loaded=None,
                 max_utterance_seconds: float | None = None):
        self.t = loaded or load_transcriber(run, decoder)
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
        # Someone who never pauses still gets finals: an utterance is closed at this length (the longest the
        # model was trained on), so the open scores stay bounded.
        limit = max_utterance_seconds or self.t.cfg.transcribe.max_seconds
        self.max_open_frames = max(self.endpoint_frames + 1, int(limit / self.t.model.frame_seconds))
        self.reset()

    def reset(self) -> None:
        self.buf = torch.zeros(0)  # samples not yet framed (with the left reflect padding once started)
        self.started = False
        self.total = 0  # samples received
        self.frames_done = 0
        self.pending = torch.zeros(1, 1, self._bands(), 0)  # feature frames waiting for a full stack
        self.state = None
        self.open: list[torch.Tensor] = []  # log-probs of the open utterance, one tensor per step
        self.open_best: list[int] = []  # its best unit per frame (partial text without re-reading the scores)
        self.open_last_speech = -1  # index in open_best of the last non-blank frame
        self.open_start = 0  # output frame where it began
        self.out_frames = 0
        self.compute_seconds = 0.0

    def _bands(self) -> int:
        return getattr(self.fe, "n_mfcc", None) or self.fe.n_mels

    # --- features -----------------------------------------------------------------------------------------------
    def _frames(self, padded: torch.Tensor, count: int) -> torch.Tensor:
        """`count` feature frames from padded samples, [1, 1, F, count] (what the offline front end computes)."""
        return self.fe.frames(padded[: (count - 1) * self.hop + self.n_fft][None])[:, None]

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
        x = pcm_to_float(torch.as_tensor(np.asarray(chunk))).reshape(-1)
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
            lp = torch.log_softmax(logits.float(), dim=-1)[0]
            best = lp.argmax(-1)
            speech = (best != 0).nonzero()
            if len(speech):
                self.open_last_speech = len(self.open_best) + int(speech[-1])
            self.open.append(lp)
            self.open_best.extend(best.tolist())
            self.out_frames += logits.shape[1]
        n = len(self.open_best)
        if not n:
            return []
        if self.open_last_speech < 0 and not close:
            if n > self.endpoint_frames:  # nothing said yet: keep only a little leading silence
                drop = n - self.endpoint_frames
                self.open = [torch.cat(self.open)[drop:]]
                self.open_best = self.open_best[drop:]
                self.open_start += drop
            return []
        silent_tail = n - 1 - self.open_last_speech
        if not (close or silent_tail >= self.endpoint_frames or n >= self.max_open_frames):
            return []
        lp = torch.cat(self.open)
        self.last_log_probs = lp  # the closed utterance's unit scores (for checks against the offline pass)
        hyp = self.t.decoder.decode(lp[None], torch.tensor([len(lp)]))[0] if self.open_last_speech >= 0 else None
        fs = self.t.model.frame_seconds
        start, end = self.open_start * fs, (self.open_start + self.open_last_speech + 1) * fs  # end of speech
        self.open, self.open_best, self.open_last_speech = [], [], -1
        self.open_start = self.out_frames
        if hyp is None or not hyp.text:
            return []
        return [{"start": round(start, 3), "end": round(end, 3),
                 "text": hyp.text, "words": [{**w, "start": round(start + w["start"], 3),
                                              "end": round(start + w["end"], 3)} for w in hyp.words]}]

    def _partial(self) -> str:
        return self.t.units.text(ctc_collapse(self.open_best)) if self.open_best else ""

"""Long recordings → speech segments, read block by block so memory does not grow with the file's length.

    read_blocks(path)       mono float32 blocks at sample_rate (resampled block by block, seamlessly)
    speech_segments(path)   Segments (start, end, samples) in order, each yielded as soon as it is complete
    audio_duration(path)    seconds, from the header

Voice activity comes from silero-vad (weights ship in its wheel; nothing is downloaded). Its network is called
as a pure function with the recurrent state held here, so one cached model serves any number of files at once.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from seehear.data.decode import audio_error
from seehear.errors import ConfigError, CorruptFileError

_SF_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError)
_NEG_MARGIN = 0.15  # hysteresis: speech ends only below threshold - 0.15 (silero's own rule)
_QUIET_MS = 100  # length of the quiet region a too-long segment is cut in
_net_lock = threading.Lock()  # the shared TorchScript module keeps no state here; serialise calls all the same


@dataclass
class Segment:
    start: float  # seconds from the start of the file
    end: float
    samples: np.ndarray  # float32 mono at sample_rate

    @property
    def duration(self) -> float:
        return self.end - self.start


def audio_duration(path) -> float:
    """Duration in seconds from the header alone (0.0 for a file with no samples)."""
    info = _info(str(path))
    return info.frames / info.samplerate if info.samplerate else 0.0


def _info(path: str):
    try:
        return sf.info(path)
    except _SF_ERRORS as e:
        raise audio_error(path, e) from None


# --- reading -----------------------------------------------------------------------------------------------------

def read_blocks(path, *, sample_rate: int = 16000, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks of about block_seconds at sample_rate. Concatenated they equal resampling the whole
    file at once: each block is resampled with enough input context on both sides that edges do not click."""
    path = str(path)
    if sample_rate <= 0 or block_seconds <= 0:
        raise ConfigError(f"read_blocks: sample_rate and block_seconds must be positive "
                          f"(got {sample_rate}, {block_seconds})")
    try:
        f = sf.SoundFile(path)
    except _SF_ERRORS as e:
        raise audio_error(path, e) from None
    with f:
        yield from _resampled(f, path, sample_rate, block_seconds)


def _read_mono(f, path: str, n: int) -> np.ndarray:
    try:
        x = f.read(n, dtype="float32", always_2d=True)
    except _SF_ERRORS as e:  # damaged data after a good header
        raise audio_error(path, e) from None
    x = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    return np.nan_to_num(x, copy=False)


def _resampled(f, path: str, sr_out: int, block_seconds: float) -> Iterator[np.ndarray]:
    sr_in = f.samplerate
    if sr_in == sr_out:
        n = max(1, round(block_seconds * sr_in))
        while len(x := _read_mono(f, path, n)):
            yield x
        return
    g = math.gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    # resample_poly's filter reaches 10*max(up, down) taps of the upsampled signal either side, i.e. this many input
    # samples; context and block sizes are multiples of `down` so every chunk starts on the global output grid.
    reach = 10 * max(up, down) / up + 2
    ctx = down * math.ceil(reach / down)
    n = max(1, round(block_seconds * sr_in / down)) * down
    buf, b0, done = np.zeros(0, np.float32), 0, 0  # buf holds input [b0, b0+len); output emitted for input < done
    eof = False
    while not eof:
        x = _read_mono(f, path, n)
        eof = len(x) < n
        buf = np.concatenate([buf, x])
        avail = b0 + len(buf)
        stop = avail if eof else (avail - ctx) // down * down  # keep ctx input samples of look-ahead
        if stop > done:
            c0, c1 = max(0, done - ctx), min(avail, stop + ctx)
            y = resample_poly(buf[c0 - b0:c1 - b0], up, down).astype(np.float32, copy=False)
            o0 = (done - c0) * up // down
            yield y[o0:] if eof else y[o0:o0 + (stop - done) * up // down]
            done = stop
        keep = max(0, done - ctx)
        buf, b0 = buf[keep - b0:].copy(), keep


# --- voice activity ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _vad_model():
    """The TorchScript silero model from the installed wheel (no download). Importing silero_vad sets torch to one
    thread as a side effect; the caller's setting is restored."""
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad

        model = load_silero_vad()
    finally:
        torch.set_num_threads(threads)
    if not (hasattr(model, "_model") and hasattr(model, "_model_8k")):
        raise RuntimeError("silero-vad's TorchScript model no longer has _model/_model_8k; update segments.py")
    return model


class _Segmenter:
    """Streaming VAD state machine: feed blocks, get finished segments. Holds audio only from the start of the open
    segment (at most max_seconds plus the padding) and the current block."""

    def __init__(self, sr, max_seconds, min_silence_ms, speech_pad_ms, threshold, min_speech_ms):
        if sr not in (8000, 16000):
            raise ConfigError(f"speech_segments: silero-vad runs at 8000 or 16000 Hz, not sample_rate={sr}")
        if max_seconds < 1.0:
            raise ConfigError(f"speech_segments: max_seconds must be at least 1 s (got {max_seconds})")
        model = _vad_model()
        self.net = model._model if sr == 16000 else model._model_8k
        self.lock = _net_lock
        self.sr, self.win = sr, 512 if sr == 16000 else 256
        self.state = torch.zeros(2, 1, 128)
        self.context = torch.zeros(1, 64 if sr == 16000 else 32)  # the model sees the previous window's tail
        ms = sr // 1000
        self.max_len, self.min_sil = int(max_seconds * sr), min_silence_ms * ms
        self.pad, self.min_speech, self.thr = speech_pad_ms * ms, min_speech_ms * ms, threshold
        self.buf, self.b0, self.pos = np.zeros(0, np.float32), 0, 0  # buf = samples [b0, ...); VAD has seen < pos
        self.triggered, self.temp_end = False, None
        self.start = None  # padded start of the open segment (in speech, or ended and waiting for its padding)
        self.raw_start = self.raw_end = None
        self.continued = False  # the open segment is the rest of one cut at max_seconds: never dropped as short
        self.last_end = 0

    def feed(self, block: np.ndarray) -> list[Segment]:
        out: list[Segment] = []
        self.buf = np.concatenate([self.buf, block])
        end = self.b0 + len(self.buf)
        while self.pos + self.win <= end:
            self._step(self._prob(self.buf[self.pos - self.b0:self.pos - self.b0 + self.win]), out)
        keep = self.pos - self.pad - self.win if self.start is None else min(self.start, self.pos - self.pad)
        keep = max(self.b0, keep)
        self.buf, self.b0 = self.buf[keep - self.b0:].copy(), keep  # copy: a view would pin the whole block
        return out

    def finish(self) -> list[Segment]:
        out: list[Segment] = []
        total = self.b0 + len(self.buf)
        if self.pos < total:  # the last partial window, zero-padded
            frame = np.zeros(self.win, np.float32)
            frame[:total - self.pos] = self.buf[self.pos - self.b0:]
            self._step(self._prob(frame), out)
        if self.start is not None:
            if self.triggered:
                if self.continued or total - self.raw_start >= self.min_speech:
                    self._emit(total, out)
            else:
                self._emit(min(self.raw_end + self.pad, total), out)
        return out

    def _prob(self, frame: np.ndarray) -> float:
        x = torch.cat([self.context, torch.from_numpy(frame).unsqueeze(0)], dim=1)
        with torch.inference_mode(), self.lock:
            p, self.state = self.net(x, self.state)
        self.context = x[:, -self.context.shape[1]:]
        return float(p)

    def _step(self, p: float, out: list[Segment]) -> None:
        f0 = self.pos
        self.pos += self.win
        if p >= self.thr:
            self.temp_end = None
            if not self.triggered:
                self.triggered = True
                self._speech_start(f0, out)
        elif self.triggered and p < self.thr - _NEG_MARGIN:
            if self.temp_end is None:
                self.temp_end = f0
            if self.pos - self.temp_end >= self.min_sil:  # a pause long enough to end the segment
                self.triggered, self.raw_end, self.temp_end = False, self.temp_end, None
                if not self.continued and self.raw_end - self.raw_start < self.min_speech:
                    self.start = self.raw_end = None  # a click or a breath, not speech
        if self.triggered and self.pos - self.start >= self.max_len:
            cut = self._quiet_cut(self.start)
            out.append(self._segment(self.start, cut))
            self.start, self.continued = cut, True
        elif self.raw_end is not None and self.pos >= self.raw_end + 2 * self.pad:
            # no later speech can claim this padding any more
            self._emit(self.raw_end + self.pad, out)

    def _speech_start(self, f0: int, out: list[Segment]) -> None:
        if self.raw_end is not None:  # the previous segment still waits for its padding: share the gap
            self._emit(min(self.raw_end + self.pad, (self.raw_end + f0) // 2), out)
        self.raw_start, self.continued = f0, False
        self.start = max(0, f0 - self.pad, self.last_end)

    def _emit(self, end: int, out: list[Segment]) -> None:
        s = self.start
        while end - s > self.max_len:
            cut = self._quiet_cut(s)
            out.append(self._segment(s, cut))
            s = cut
        if end > s:
            out.append(self._segment(s, end))
        self.last_end = max(self.last_end, end)
        self.start = self.raw_end = None
        self.continued = False

    def _quiet_cut(self, s: int) -> int:
        """Centre of the quietest 100 ms in the second half of [s, s + max_len]: a pause between words if any."""
        lo, hi = s + self.max_len // 2, min(s + self.max_len, self.b0 + len(self.buf))
        w, hop = self.sr * _QUIET_MS // 1000, self.sr // 100
        x = self.buf[lo - self.b0:hi - self.b0].astype(np.float64)
        if len(x) < w:
            return hi
        c = np.concatenate([[0.0], np.cumsum(x * x)])
        starts = np.arange(0, len(x) - w + 1, hop)
        return lo + int(starts[np.argmin(c[starts + w] - c[starts])]) + w // 2

    def _segment(self, s: int, e: int) -> Segment:
        return Segment(s / self.sr, e / self.sr, self.buf[s - self.b0:e - self.b0].copy())


def speech_segments(path, *, sample_rate: int = 16000, max_seconds: float = 15.0, min_silence_ms: int = 300,
                    speech_pad_ms: int = 150, threshold: float = 0.5, block_seconds: float = 30.0,
                    min_speech_ms: int = 250) -> Iterator[Segment]:
    """Speech segments of one file, in order, each yielded as soon as it is complete (transcribe while reading).

    Speech is padded by speech_pad_ms on each side (never overlapping a neighbour), pauses shorter than
    min_silence_ms do not end a segment, bursts shorter than min_speech_ms are dropped, and a segment longer than
    max_seconds is cut at its quietest 100 ms in the last half before the limit. Silence or an empty file yields
    nothing; an unreadable file raises CorruptFileError on the first next().
    """
    seg = _Segmenter(sample_rate, max_seconds, min_silence_ms, speech_pad_ms, threshold, min_speech_ms)
    for block in read_blocks(path, sample_rate=sample_rate, block_seconds=block_seconds):
        yield from seg.feed(block)
    yield from seg.finish()


__all__ = ["Segment", "speech_segments", "read_blocks", "audio_duration", "CorruptFileError"]

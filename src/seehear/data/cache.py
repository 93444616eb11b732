"""Decode every example once, in parallel threads, into one preallocated tensor.

Pillow and libsndfile release the GIL while decoding, so threads scale; one tensor afterwards keeps the training
loop in tensor code (no per-sample Python). Corrupt files are skipped and listed, never fatal.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import torch

from seehear.data.decode import decode_audio, decode_image, float_to_pcm
from seehear.data.frames import decode_sequence
from seehear.errors import ConfigError, CorruptFileError

_CHUNK = 32  # records per task: amortises executor overhead on many tiny files (MNIST: 70k members)


@dataclass
class DecodedSet:
    x: torch.Tensor  # uint8 [N,C,H,W] images | int16 [N,S] audio (float = x / 32767) | uint8 [N,T,C,H,W] frames
    keep: list[int]  # indices into the records that were decoded, in order (row i of x is records[keep[i]])
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) of files that could not be decoded
    lengths: torch.Tensor | None = None  # frames: each sequence's true number of frames (before sampling/padding)


def decode_all(records, cfg, modality, *, workers: int = 0, progress: bool = True) -> DecodedSet:
    """Decode `records` per `cfg` (RunConfig) for `modality` ('image' | 'audio' | 'frames')."""
    n = len(records)
    lengths = None
    if modality == "image":
        ic, limit = cfg.image, cfg.data.max_image_pixels
        out = torch.empty((n, ic.channels, ic.size, ic.size), dtype=torch.uint8)

        def one(i):
            out[i] = decode_image(records[i], size=ic.size, channels=ic.channels, resize=ic.resize, max_pixels=limit)
    elif modality == "audio":
        ac = cfg.audio
        if not ac.clip_seconds or ac.clip_seconds <= 0:
            raise ConfigError("audio.clip_seconds must be > 0 to stack recordings into one tensor")
        samples = round(ac.clip_seconds * ac.sample_rate)
        out = torch.empty((n, samples), dtype=torch.int16)

        def one(i):
            w = decode_audio(records[i], sample_rate=ac.sample_rate, num_samples=samples, crop=ac.crop)
            out[i] = float_to_pcm(w)
    elif modality == "frames":  # image sequences (data/frames.py): frames.count frames each
        ic, limit, count = cfg.image, cfg.data.max_image_pixels, cfg.frames.count
        if count < 1:
            raise ConfigError(f"frames.count must be at least 1, got {count}")
        out = torch.empty((n, count, ic.channels, ic.size, ic.size), dtype=torch.uint8)
        lengths = torch.zeros(n, dtype=torch.long)

        def one(i):
            out[i], lengths[i] = decode_sequence(records[i], count=count, size=ic.size, channels=ic.channels,
                                                 resize=ic.resize, max_pixels=limit)
    else:
        raise ConfigError(f"modality {modality!r} is not image, audio or frames")

    def one_or_reason(i):
        try:
            one(i)
        except CorruptFileError as e:
            return e.reason
        return None

    failed = _decode_parallel(n, one_or_reason, workers, progress, modality)
    keep = [i for i in range(n) if i not in failed]
    x = out if not failed else out[torch.tensor(keep, dtype=torch.long)]
    skipped = [(records[i].key, failed[i]) for i in sorted(failed)]
    return DecodedSet(x, keep, skipped, None if lengths is None else lengths[keep])


def _decode_parallel(n: int, one_or_reason, workers: int, progress: bool, what: str) -> dict[int, str]:
    """Run one_or_reason(i) for i in range(n) in threads, in chunks; returns {i: reason} of the examples that
    failed (one_or_reason returned a reason)."""
    def chunk(lo, hi):
        bad = [(i, r) for i in range(lo, hi) if (r := one_or_reason(i)) is not None]
        return hi - lo, bad

    failed: dict[int, str] = {}
    bar = _progress(n, what) if progress and n > 200 else None
    try:
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="decode") as pool:
            for fut in as_completed([pool.submit(chunk, lo, min(lo + _CHUNK, n)) for lo in range(0, n, _CHUNK)]):
                done, bad = fut.result()
                failed.update(bad)
                if bar is not None:
                    bar[0].advance(bar[1], done)
    finally:
        if bar is not None:
            bar[0].stop()
    return failed


def _progress(n: int, modality: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(TextColumn(f"decoding {modality}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 transient=True)
    p.start()
    return p, p.add_task("decode", total=n)


@dataclass
class DecodedWaves:
    """Whole recordings of different lengths, as int16, one flat tensor + offsets (no per-clip tensor objects)."""
    samples: torch.Tensor  # int16 [total]
    offsets: torch.Tensor  # int64 [N + 1]; clip i is samples[offsets[i]:offsets[i + 1]]
    keep: list[int]  # indices into the records, row i of this set is records[keep[i]]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return len(self.keep)

    def wave(self, i: int) -> torch.Tensor:
        """Row i as int16 [S] (a view, no copy)."""
        return self.samples[int(self.offsets[i]):int(self.offsets[i + 1])]

    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-padded int16 [B, S_max] and lengths [B] for the given rows."""
        lens = self.lengths[rows]
        out = torch.zeros((len(rows), int(lens.max()) if len(rows) else 0), dtype=torch.int16)
        for j, i in enumerate(rows.tolist() if torch.is_tensor(rows) else rows):
            w = self.wave(i)
            out[j, : len(w)] = w
        return out, lens


def decode_waves(records, sample_rate: int, *, max_seconds: float | None = None, workers: int = 0,
                 progress: bool = True) -> DecodedWaves:
    """Decode whole recordings (mono, resampled) for sequence tasks; files that cannot be read, and recordings
    longer than max_seconds, are skipped and listed with the reason."""
    n = len(records)
    waves: list = [None] * n
    limit = int(max_seconds * sample_rate) if max_seconds else None

    def one_or_reason(i):
        try:
            w = decode_audio(records[i], sample_rate=sample_rate, num_samples=None, crop="start")
        except CorruptFileError as e:
            return e.reason
        if limit and len(w) > limit:
            return (f"{len(w) / sample_rate:.1f} s is longer than transcribe.max_seconds ({max_seconds:g} s); "
                    f"too long to train on whole")
        waves[i] = float_to_pcm(w)
        return None

    failed = _decode_parallel(n, one_or_reason, workers, progress, "audio")
    keep = [i for i in range(n) if i not in failed]
    lens = torch.tensor([0] + [len(waves[i]) for i in keep], dtype=torch.long)
    samples = torch.cat([waves[i] for i in keep]) if keep else torch.zeros(0, dtype=torch.int16)
    return DecodedWaves(samples, torch.cumsum(lens, 0), keep, [(records[i].key, failed[i]) for i in sorted(failed)])

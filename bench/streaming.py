"""Streaming transcription figures for a trained streaming run: WER when fed in real-time-sized chunks, and the
delay from when audio is spoken to when the unit scores covering it come out.

Delay of an output frame k (it covers audio up to (k + 1) x 40 ms) = the audio time at which the chunk that
released it ended, plus the compute time of that feed, minus (k + 1) x 40 ms. It includes waiting for the chunk
to fill, the model's look-ahead, the STFT half-window and frame stacking: everything but the microphone.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np


def stream_figures(run_dir: Path, rows: list[dict], chunk_ms: int = 100, threads: int = 1) -> dict:
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    from pocketsphinx_peer import score
    from seehear.speech.streaming import StreamingTranscriber
    from seehear.tasks.transcribe import load

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t = load(run_dir)
        s = StreamingTranscriber(run_dir, loaded=t)
        sr = t.cfg.audio.sample_rate
        frame = t.model.frame_seconds
        step = int(sr * chunk_ms / 1000)
        hyps, delays, feed_ms, audio = [], [], [], 0.0
        for r in rows:
            x, rate = sf.read(r["path"], dtype="float32", always_2d=True)
            x = x.mean(axis=1)
            if rate != sr:
                x = AF.resample(torch.from_numpy(x), rate, sr).numpy()
            audio += len(x) / sr
            s.reset()
            finals = []
            for i in range(0, len(x), step):
                before_frames = s.out_frames
                t0 = time.perf_counter()
                finals += s.feed(x[i:i + step])["final"]
                dt = time.perf_counter() - t0
                feed_ms.append(1000 * dt)
                arrived = min(len(x), i + step) / sr
                delays += [arrived + dt - (k + 1) * frame for k in range(before_frames, s.out_frames)]
            finals += s.finish()["final"]
            hyps.append(" ".join(f["text"] for f in finals))
    finally:
        torch.set_num_threads(before)
    d = np.array(delays) * 1000
    return {**score([r["text"] for r in rows], hyps), "chunk_ms": chunk_ms, "threads": threads,
            "lookahead_ms": round(1000 * frame * t.model.acoustic.lookahead),
            "delay_ms_mean": round(float(d.mean()), 1), "delay_ms_p95": round(float(np.percentile(d, 95)), 1),
            "delay_ms_max": round(float(d.max()), 1), "feed_ms_median": round(statistics.median(feed_ms), 2),
            "rtf": round(sum(feed_ms) / 1000 / audio, 4), "utterances": len(rows)}

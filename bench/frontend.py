"""Audio front end speed: 80-band log-mel of 16 kHz audio on ONE core, side by side with torchaudio and librosa on the
same clips. Goal (issue 4): at least 3,000x real time. Figures are x real time = seconds of audio per second of
compute, best of several repeats."""
from __future__ import annotations

import time

import numpy as np
import torch

from common import Bench

SAMPLE_RATE, N_MELS, N_FFT, WIN, HOP = 16000, 80, 512, 400, 160
CLIPS, SECONDS, REPEATS = 64, 1.0, 7
GOAL = 3000.0


def best_time(fn) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = int(SAMPLE_RATE * SECONDS)
    # speech-like test signal: harmonic tones with noise (content does not change the cost, length does)
    t = np.arange(n) / SAMPLE_RATE
    clips = np.stack([0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(n)
                      for _ in range(CLIPS)]).astype(np.float32)
    audio_seconds = CLIPS * SECONDS
    x = torch.from_numpy(clips)

    from seehear.features.audio import LogMel

    ours = LogMel(SAMPLE_RATE, N_FFT, WIN, HOP, N_MELS, f_min=0.0, normalize="none").eval()
    import torchaudio

    ta = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, win_length=WIN, hop_length=HOP,
                                              n_mels=N_MELS, power=2.0)
    import librosa

    def run_ours():
        with torch.inference_mode():
            ours(x)

    def run_torchaudio():
        with torch.inference_mode():
            torch.log(ta(x) + 1e-6)

    def run_librosa():  # librosa takes the whole [clips, samples] batch in one call, as ours does
        np.log(librosa.feature.melspectrogram(y=clips, sr=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN, hop_length=HOP,
                                              n_mels=N_MELS, htk=True, norm=None) + 1e-6)

    with Bench("frontend") as b:
        rt = {name: round(audio_seconds / best_time(fn), 1)
              for name, fn in [("seehear", run_ours), ("torchaudio", run_torchaudio), ("librosa", run_librosa)]}
        b.figures.update({"x_realtime_one_core": rt, "clips": CLIPS, "clip_seconds": SECONDS,
                          "settings": {"sample_rate": SAMPLE_RATE, "n_mels": N_MELS, "n_fft": N_FFT,
                                       "win_length": WIN, "hop_length": HOP},
                          "ratio_vs_librosa": round(rt["seehear"] / rt["librosa"], 2),
                          "ratio_vs_torchaudio": round(rt["seehear"] / rt["torchaudio"], 2)})
        b.goal("logmel_x_realtime_one_core", GOAL, rt["seehear"], unit="x real time")


if __name__ == "__main__":
    main()

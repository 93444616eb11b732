"""What a deployed model costs: parameters, bytes on disk, FLOPs, batch-1 latency in ONNX Runtime, accuracy."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from seehear.data.decode import pcm_to_float


def flops(model: torch.nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass in eval mode (test-time-augmentation views included: what predict pays),
    counted by PyTorch's FlopCounterMode (convolutions and matrix products, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(pcm_to_float(example) if example.dtype == torch.int16 else example)
    return int(counter.get_total_flops())


def latencies_ms(paths: dict[str, Path], x1: np.ndarray, rounds: int = 5, runs: int = 60,
                 warmup: int = 10) -> dict[str, float]:
    """Median batch-1 latency (ms, one thread) of each ONNX model. The models are timed in turns over `rounds`
    (a burst of load from other processes on the machine then hits all alike), median over all runs."""
    from seehear.deploy.onnx import onnx_session

    sessions = {k: onnx_session(p, threads=1) for k, p in paths.items()}
    feed = {"input": x1}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        for _ in range(warmup):
            s.run(None, feed)
    for _ in range(rounds):
        for k, s in sessions.items():
            for _ in range(runs):
                t = time.perf_counter()
                s.run(None, feed)
                times[k].append(1000 * (time.perf_counter() - t))
    return {k: round(statistics.median(v), 4) for k, v in times.items()}


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from seehear.deploy.int8_check import top1

    return round(float((top1(path, x) == y).mean()), 4) if len(y) else float("nan")

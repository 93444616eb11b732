"""The machine's own ceiling, measured here: matrix product and 3x3 convolution GFLOP/s in fp32 and bf16.
Training benchmarks report their achieved GFLOP/s as a fraction of these."""
from __future__ import annotations

import time

import torch

from common import Bench


def _rate(fn, flop: float, repeat: int = 5) -> float:
    fn()  # warm up (oneDNN picks kernels on first call)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(flop / best / 1e9, 1)


def measure() -> dict:
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    ab, bb = a.bfloat16(), b.bfloat16()
    x = torch.randn(256, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    conv_flop = 2 * 256 * 64 * 64 * 9 * 32 * 32

    def conv_bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            conv(x)

    def conv_fp32():
        with torch.no_grad():
            conv(x)

    return {"threads": torch.get_num_threads(),
            "matmul_fp32_gflops": _rate(lambda: a @ b, 2 * n ** 3),
            "matmul_bf16_gflops": _rate(lambda: ab @ bb, 2 * n ** 3),
            "conv3x3_fp32_gflops": _rate(conv_fp32, conv_flop),
            "conv3x3_bf16_gflops": _rate(conv_bf16, conv_flop)}


if __name__ == "__main__":
    with Bench("hardware") as b:
        b.figures.update(measure())

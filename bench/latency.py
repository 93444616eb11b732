"""Inference latency, batch 1, one thread, end to end (raw samples or pixels in, label out; front end included),
eager PyTorch and ONNX Runtime side by side. Goals (issue 4): a spoken-word model answers a 1 s clip in <= 1 ms, an
image model a 32x32 image in <= 0.5 ms.

Latency depends on the architecture, not on the weights, so the models are built from the default recipes (the ones
the fsdd and cifar10 benchmarks train); pass --run DIR to time a trained run folder instead.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from common import Bench

GOALS_MS = {"audio": 1.0, "image": 0.5}
WARMUP, ITERS, ROUNDS = 50, 200, 5


def time_interleaved(fns: dict, rounds: int = ROUNDS) -> dict:
    """Engines side by side: each round times every engine (ITERS calls after WARMUP) in turn, so that a burst of
    load from elsewhere on a shared host hits all of them alike rather than one. Per engine: the median over rounds
    of each round's median and 90th percentile, and the round medians themselves (their spread shows the noise)."""
    rows = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(WARMUP):
                fn()
            ts = []
            for _ in range(ITERS):
                t = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t) * 1000)
            ts.sort()
            rows[name].append((statistics.median(ts), ts[int(0.9 * len(ts))]))
    out = {}
    for name, r in rows.items():
        out[name] = {"median_ms": round(statistics.median(m for m, _ in r), 4),
                     "p90_ms": round(statistics.median(p for _, p in r), 4)}
        if rounds > 1:
            out[name]["round_medians_ms"] = [round(m, 4) for m, _ in r]
    return out


def recipe_model(modality: str):
    from seehear.models.recognizer import build_recognizer
    from seehear.recipes import resolve

    cfg = resolve("audio-words" if modality == "audio" else "image-small")
    labels = [str(i) for i in range(10)]
    return build_recognizer(cfg, labels, modality).eval(), cfg


def measure(model, example: torch.Tensor, name: str) -> dict:
    from seehear.deploy.onnx import OPSET, onnx_session
    from seehear.deploy.quantize import quantize_int8

    out = {"model": name, "params": sum(p.numel() for p in model.parameters())}
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(d) / "m.onnx"
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          opset_version=OPSET, dynamo=False)
        sess = onnx_session(path, threads=1)
        feed = {"input": example.numpy()}
        # int8 (deploy/quantize.py): latency does not depend on the weights, so random inputs calibrate it here;
        # its accuracy is measured on a trained model by bench/cifar10.py ("deployment").
        shape = (16, *example.shape[1:])  # fed one at a time: this graph was exported with batch 1
        calib = (torch.randint(0, 256, shape, dtype=torch.uint8) if example.dtype == torch.uint8
                 else 0.1 * torch.randn(shape))
        q = quantize_int8(path, Path(d) / "m.int8.onnx", calib.numpy(), batch=1)
        qsess = onnx_session(q, threads=1)
        with torch.inference_mode():
            out.update(time_interleaved({"eager": lambda: model(example).argmax(1),
                                         "onnxruntime": lambda: sess.run(None, feed)[0].argmax(1),
                                         "onnxruntime_int8": lambda: qsess.run(None, feed)[0].argmax(1)}))
    out["speedup_ort_vs_eager"] = round(out["eager"]["median_ms"] / out["onnxruntime"]["median_ms"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", default=[], help="time trained run folders instead of the recipes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = []
    if args.run:
        from seehear.deploy.onnx import example_input
        from seehear.engine.run_folder import load_run

        for r in args.run:
            run = load_run(r)
            cases.append((run.modality, run.model, example_input(run.meta["input"], batch=1), run.meta["model"]["name"]))
    else:
        for modality in ("audio", "image"):
            model, cfg = recipe_model(modality)
            x = (0.1 * torch.randn(1, int(cfg.audio.sample_rate * cfg.audio.clip_seconds)) if modality == "audio"
                 else torch.randint(0, 256, (1, cfg.image.channels, cfg.image.size, cfg.image.size), dtype=torch.uint8))
            cases.append((modality, model, x, cfg.model.name))
    with Bench("latency") as b:
        for modality, model, x, name in cases:
            m = measure(model, x, name)
            b.figures[modality] = m
            best = min(m["eager"]["median_ms"], m["onnxruntime"]["median_ms"])  # fp32: accuracy as trained
            b.goal(f"{modality}_batch1_ms_fp32", GOALS_MS[modality], best, higher_is_better=False, unit="ms")
            b.figures[modality]["model_tta"] = getattr(model, "tta", "none")
        b.notes.append(f"median over {ROUNDS} rounds, the engines in turn within each round, of each round's median "
                       f"of {ITERS} calls")
        b.notes.append("batch 1, torch.set_num_threads(1) and ORT intra_op_num_threads=1; input is raw samples "
                       "(1 s at 16 kHz) or uint8 pixels, so the front end is included")
        b.notes.append("these goals count fp32 engines only (an untrained model's accuracy says nothing); int8 ONNX "
                       "Runtime is reported beside them. The image goal with every engine, each at its measured "
                       "test accuracy, is cifar10.json's image_batch1_ms (figures.deployment)")


if __name__ == "__main__":
    main()

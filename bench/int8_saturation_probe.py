"""Probe: how often fastnet's whitening stem would saturate ONNX Runtime's u8 x s8 kernels on an AVX2-only CPU.

    .venv/bin/python bench/int8_saturation_probe.py [--run RUN --data DATA]  → results/probes/int8-saturation.json

Without VNNI, ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW, which adds each pair of
products into a saturating int16. This cannot be run on a VNNI machine, so the probe counts it instead: it quantizes
the stem's input (MinMax, uint8) and weights (per channel, 8 bits or 7 bits = reduce_range) as ORT does, forms
every output pixel's products in im2col order and counts pair sums beyond +-32767. It also reports how far the
stem's int8 weights are from cancelling on directions the data never takes (grayscale digits stored as RGB).
Without --run it trains the demo's digits run (sklearn digits, ~25 s).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from common import Bench, digits_run, run_accuracy


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run")
    ap.add_argument("--data")
    a = ap.parse_args(argv)
    import seehear
    from seehear.data.cache import decode_all
    from seehear.data.sources import load_source

    with Bench("probes/int8-saturation") as b:
        run_dir, data = digits_run(a.run, a.data, "digits-saturation")
        run = seehear.load_run(run_dir)
        recs = load_source(data, modality="image").records
        recs = [recs[int(i)] for i in np.linspace(0, len(recs) - 1, min(200, len(recs))).round()]
        with torch.no_grad():
            f = run.model.frontend(decode_all(recs, run.cfg, "image", progress=False).x).numpy()
        w = run.model.backbone.stem[0].weight.detach().double().numpy()
        out_ch = w.shape[0]
        lo, hi = min(float(f.min()), 0.0), max(float(f.max()), 0.0)
        scale = (hi - lo) / 255
        q = np.clip(np.round(f / scale) + round(-lo / scale), 0, 255).astype(np.int64)
        k = w.shape[-1]
        cols = np.lib.stride_tricks.sliding_window_view(q, (k, k), axis=(2, 3))  # [N, C, H', W', k, k]
        cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(-1, w[0].size)  # K in (C, kh, kw) order, as the weights
        rows = {}
        for name, qmax in (("int8", 127), ("int7_reduce_range", 63)):
            ws = np.abs(w).reshape(out_ch, -1).max(1) / qmax
            wq = np.round(w.reshape(out_ch, -1) / ws[:, None]).astype(np.int64)
            prod = cols[:, None, :] * wq[None]
            pairs = prod[..., 0::2] + prod[..., 1::2]
            rows[name] = {"pair_sums_saturating_fraction": round(float((np.abs(pairs) > 32767).mean()), 5),
                          "max_abs_pair_sum": int(np.abs(pairs).max())}
        # cancellation: per filter, the largest |sum over channels| of the weights at one tap, fp32 vs int8
        ws = np.abs(w).reshape(out_ch, -1).max(1) / 127
        w8 = np.round(w / ws[:, None, None, None]) * ws[:, None, None, None]
        b.figures.update({
            "run": str(run_dir), "data": str(data), "run_test_accuracy": run_accuracy(run_dir), "images": len(recs),
            "stem_weight_shape": list(w.shape),
            "stem_max_abs_weight": round(float(np.abs(w).max()), 3),
            "channel_sum_fp32_max_per_filter": [float(f"{v:.3g}") for v in np.abs(w.sum(1)).max((1, 2))],
            "channel_sum_int8_max_per_filter": [float(f"{v:.3g}") for v in np.abs(w8.sum(1)).max((1, 2))],
            "vpmaddubsw": rows})
        b.notes.append("counts, not timings: computed in numpy; pairs are taken in the weights' (C, kh, kw) order, "
                       "which is how im2col lays out K, though MLAS's packing may pair other neighbours")


if __name__ == "__main__":
    main()

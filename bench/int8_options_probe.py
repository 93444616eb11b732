"""Probe: which int8 settings keep a fastnet run closest to fp32 (decides quantize.py's defaults).

    .venv/bin/python bench/int8_options_probe.py [--run RUN --data DATA]   → results/probes/int8-options.json

For each setting — nothing kept fp32 (the old default), stem + classifier fp32 with MinMax / Percentile / Entropy
calibration, symmetric activations, 7-bit weights (reduce_range) — it calibrates on a third of up to 768 inputs and
measures on the other two thirds: top-1 agreement with fp32 and the logits' signal-to-noise ratio (dB), with ORT's
graph optimisations on (this CPU's integer kernels) and off (QDQ as float ops: the quantization's own error).
Without --run it trains the demo's digits run (sklearn digits as 3-channel PNGs, ~25 s).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import Bench, digits_run, run_accuracy


def logits(path, x, optimized):
    from seehear.deploy.int8_check import session

    s = session(path, optimized)
    return np.concatenate([s.run(None, {"input": x[i:i + 64]})[0] for i in range(0, len(x), 64)])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run")
    ap.add_argument("--data")
    a = ap.parse_args(argv)
    import seehear
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from seehear.deploy.int8_check import load_inputs
    from seehear.deploy.onnx import export_onnx
    from seehear.deploy.quantize import default_fp32_nodes, preprocess, quantizable_nodes, quantize_prepared

    with Bench("probes/int8-options") as b:
        run_dir, data = digits_run(a.run, a.data, "digits-options")
        run = seehear.load_run(run_dir)
        fp32 = export_onnx(run_dir)
        x_cal, x_chk, _, _ = load_inputs(run, data)
        ref = logits(fp32, x_chk, True)
        rows = {}
        with tempfile.TemporaryDirectory() as d:
            pre = preprocess(fp32, Path(d) / "pre.onnx")
            nodes = quantizable_nodes(pre)
            base = default_fp32_nodes(nodes)
            settings = {"nothing fp32, minmax": dict(fp32_nodes=[]),
                        "stem+classifier fp32, minmax": dict(fp32_nodes=base),
                        "stem+classifier fp32, percentile": dict(fp32_nodes=base, method="percentile"),
                        "stem+classifier fp32, entropy": dict(fp32_nodes=base, method="entropy"),
                        "stem+classifier fp32, minmax, reduce_range": dict(fp32_nodes=base, reduce_range=True),
                        "nothing fp32, minmax, reduce_range": dict(fp32_nodes=[], reduce_range=True)}
            for i, (name, kw) in enumerate(settings.items()):
                q = quantize_prepared(pre, Path(d) / f"q{i}.onnx", x_cal, **kw)
                rows[name] = q
            # symmetric activations: ORT's extra option, same nodes as the default plan

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter([{"input": x_cal[i:i + 32]} for i in range(0, len(x_cal), 32)])

                def get_next(self):
                    return next(self.it, None)

            sym = Path(d) / "sym.onnx"
            quantize_static(str(pre), str(sym), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                            nodes_to_quantize=[n for n, _ in nodes if n not in base],
                            extra_options={"ActivationSymmetric": True})
            rows["stem+classifier fp32, minmax, symmetric int8 activations"] = sym
            out = {}
            for name, q in rows.items():
                r = {}
                for opt in (True, False):
                    got = logits(q, x_chk, opt)
                    snr = 10 * np.log10((ref ** 2).sum() / max(((got - ref) ** 2).sum(), 1e-30))
                    key = "optimized" if opt else "unoptimized"
                    r[key] = {"agreement": round(float((got.argmax(1) == ref.argmax(1)).mean()), 4),
                              "logits_snr_db": round(float(snr), 1)}
                out[name] = r
        b.figures.update({"run": str(run_dir), "data": str(data), "run_test_accuracy": run_accuracy(run_dir),
                          "check_examples": int(len(x_chk)),
                          "calibration_examples": int(len(x_cal)), "settings": out})
        b.notes.append("agreement and SNR on held-out inputs (not the calibration ones); one run: differences of "
                       "a dB are not significant")


if __name__ == "__main__":
    main()

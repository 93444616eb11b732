"""int8 export that is checked before it is written: calibrate on part of the data, measure on the rest.

The int8 model is measured against the fp32 graph on HELD-OUT inputs (never the calibration inputs), in the
optimized ONNX Runtime session that deployment uses on this CPU (integer kernels), and also with graph optimisation
off, where QDQ runs as dequantize -> float op -> quantize: the second number isolates the error of the quantization
itself from any kernel's. Below `min_agreement` the export falls back step by step — keeping more leading layers in
fp32 (stem, first block, ...), trying another calibration method, dynamic MatMul/Gemm — and if no step reaches it,
refuses with the measurements in one line. Nothing is written at the output path before a model passes.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from seehear.data.decode import pcm_to_float
from seehear.engine.checkpoint import atomic_write
from seehear.errors import SeehearError

MIN_AGREEMENT = 0.99  # top-1 agreement with fp32 on held-out inputs that an int8 model must reach to be written
CALIBRATION_EXAMPLES = 256
CHECK_EXAMPLES = 512
MIN_CHECK = 20
MAX_FP32_LEADING = 4  # fall back as far as the stem + this many - 1 following layers in fp32


class Int8Refused(SeehearError):
    """No int8 plan agreed with fp32 well enough on held-out inputs; nothing was written."""


def split_inputs(n: int, calibration: int = CALIBRATION_EXAMPLES, check: int = CHECK_EXAMPLES):
    """Indices (calibration, check) of up to calibration+check of n records, evenly spread (so every class of a
    class-sorted folder appears in both) and disjoint; small sets split 1:2."""
    take = min(n, calibration + check)
    idx = np.unique(np.linspace(0, n - 1, take).round().astype(int)) if take else np.zeros(0, int)
    calib_mask = (np.arange(len(idx)) % 3) == 0
    return idx[calib_mask][:calibration], idx[~calib_mask][:check]


def plans(nodes: list[tuple[str, str]]) -> list[dict]:
    """The fallback ladder, mildest first. Each plan: which layers stay fp32, calibration method, and whether
    MatMul/Gemm are quantized dynamically (per batch ranges) instead of statically."""
    from seehear.deploy.quantize import default_fp32_nodes

    names = [n for n, _ in nodes]
    base = default_fp32_nodes(nodes)
    if not base:  # one or two layers: all int8 or nothing
        return [{"fp32_nodes": [], "method": "minmax", "dynamic_matmul": False}] if names else []
    last = [names[-1]] if names[-1] in base else []
    has_matmul = any(t in ("MatMul", "Gemm") for n, t in nodes if n not in base)
    out = []
    for k in range(1, min(MAX_FP32_LEADING, len(names) - len(last) - 1) + 1):
        keep = list(dict.fromkeys(names[:k] + last))
        variants = [("minmax", False)] + ([("percentile", False)] if k == 1 else [])
        if has_matmul:
            variants.append(("minmax", True))
        out += [{"fp32_nodes": keep, "method": m, "dynamic_matmul": d} for m, d in variants]
    return out


def session(path, optimized: bool = True):
    import onnxruntime as ort

    from seehear.deploy.onnx import onnx_session

    if optimized:
        return onnx_session(path)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def top1(path, x: np.ndarray, optimized: bool = True, batch: int = 64) -> np.ndarray:
    s = session(path, optimized)
    return np.concatenate([s.run(None, {"input": x[i:i + batch]})[0].argmax(1) for i in range(0, len(x), batch)])


def load_inputs(run, data):
    """(inputs the graph takes, label indices or None, skipped count) for up to CALIBRATION+CHECK records."""
    import torch

    from seehear.data.cache import decode_all
    from seehear.data.sources import load_source

    recs = load_source(data, modality=run.modality).records
    calib, check = split_inputs(len(recs))
    order = np.concatenate([calib, check])
    decoded = decode_all([recs[int(i)] for i in order], run.cfg, run.modality, progress=False)
    keep = np.asarray(decoded.keep, dtype=int)
    x = decoded.x
    if x.dtype == torch.int16:  # cached audio; the exported graph takes float samples
        x = pcm_to_float(x)
    x = x.numpy()
    index = {name: i for i, name in enumerate(run.labels)}
    labels = [recs[int(order[i])].label for i in keep]
    y = np.array([index[v] for v in labels]) if labels and all(v in index for v in labels) else None
    is_calib = keep < len(calib)
    return x[is_calib], x[~is_calib], (y[~is_calib] if y is not None else None), len(decoded.skipped)


def export_int8(run_dir: str | Path, calibration_data: str | Path, out: str | Path | None = None, *,
                min_agreement: float = MIN_AGREEMENT, reduce_range: bool | None = None) -> tuple[Path, dict]:
    """Export RUN to ONNX (RUN/model.onnx) and write an int8 copy to `out` (default RUN/model.int8.onnx) that
    agrees with it on >= `min_agreement` of held-out inputs from `calibration_data` (a folder or manifest like the
    training data; labels optional, used for accuracy when they are the run's). Returns (path, info)."""
    from seehear.deploy.cpu import int8_isa
    from seehear.deploy.onnx import export_onnx
    from seehear.deploy.quantize import preprocess, quantizable_nodes, quantize_prepared
    from seehear.engine.run_folder import load_run

    run = load_run(run_dir)
    if run.modality == "audio-image":  # calibration and the check read one input; a fused graph has three
        raise SeehearError(f"{run_dir} is an audio-image run: int8 export takes single-input runs; deploy its fp32 "
                           f"`seehear export {run_dir}` (model.onnx)")
    fp32 = export_onnx(run_dir)
    x_cal, x_chk, y_chk, skipped = load_inputs(run, calibration_data)
    if len(x_cal) < 10 or len(x_chk) < MIN_CHECK:
        raise SeehearError(f"int8 export needs at least {10 + MIN_CHECK} decodable inputs in {calibration_data} "
                           f"(calibration + held-out check), found {len(x_cal) + len(x_chk)}")
    cpu = int8_isa()
    if reduce_range is None:
        reduce_range = cpu["saturates"]
    out = Path(out) if out else Path(run.run_dir) / "model.int8.onnx"
    ref = top1(fp32, x_chk)
    attempts = []
    with tempfile.TemporaryDirectory() as d:
        pre = preprocess(fp32, Path(d) / "pre.onnx")
        nodes = quantizable_nodes(pre)
        for i, plan in enumerate(plans(nodes)):
            q = quantize_prepared(pre, Path(d) / f"q{i}.onnx", x_cal, reduce_range=reduce_range, **plan)
            agree = float((top1(q, x_chk) == ref).mean())
            attempts.append({**plan, "agreement": round(agree, 4)})
            if agree >= min_agreement:
                break
        else:
            best = max(attempts, key=lambda a: a["agreement"]) if attempts else None
            why = (f"its top-1 agrees with fp32 on at most {100 * best['agreement']:.1f}% of {len(x_chk)} held-out "
                   f"inputs (needs {100 * min_agreement:.1f}%), even with {len(attempts[-1]['fp32_nodes'])} of "
                   f"{len(nodes)} layers in fp32" if best else f"the model has no layer int8 can replace")
            raise Int8Refused(f"int8 model not written ({cpu['isa']}, reduce_range={reduce_range}): {why}; "
                              f"deploy the fp32 {fp32.name}, or accept less with --min-agreement")
        chosen = attempts[-1]
        info = {"calibration_examples": int(len(x_cal)), "check_examples": int(len(x_chk)), "skipped": skipped,
                "top1_agreement_with_fp32": chosen["agreement"],
                "top1_agreement_unoptimized": round(float((top1(q, x_chk, optimized=False) == ref).mean()), 4),
                "min_agreement": min_agreement, "fp32_nodes": chosen["fp32_nodes"],
                "quantized_nodes": [n for n, _ in nodes if n not in chosen["fp32_nodes"]],
                "calibration_method": chosen["method"], "dynamic_matmul": chosen["dynamic_matmul"],
                "fell_back": len(attempts) > 1, "attempts": attempts, "cpu_isa": cpu["isa"],
                "reduce_range": bool(reduce_range)}
        if y_chk is not None:
            info["accuracy_fp32"] = round(float((ref == y_chk).mean()), 4)
            info["accuracy_int8"] = round(float((top1(q, x_chk) == y_chk).mean()), 4)
        atomic_write(out, lambda tmp: shutil.copyfile(q, tmp))  # only now, after the check passed
    return out, info

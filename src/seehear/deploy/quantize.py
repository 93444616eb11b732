"""int8 post-training quantization of an exported ONNX model, with ONNX Runtime's own tools.

Static quantization for convolutions (and by default matrix products): weights int8 per output channel,
activations uint8 with ranges calibrated on real inputs, QDQ format, which ORT fuses into integer kernels.
Recurrent layers (LSTM/GRU) are quantized dynamically (ORT's static QDQ has no LSTM), and so are MatMul/Gemm when a
plan asks for it. The front end (pixel scaling, log-mel) stays float, so the model still takes `predict`'s input.

Which layers stay fp32, and why, by default:
- the first quantizable layer (fastnet's frozen patch-whitening stem): its filters are eigenvectors divided by
  sqrt(eigenvalue), weights up to ~45 whose sums cancel to ~1e-7 on the directions the data never takes (grayscale
  stored as RGB has 8 of 12 such directions). int8 weights cannot cancel exactly, so those channels, ~0 in fp32,
  carry quantization noise as large as the real features, and later BatchNorms fitted to a ~0 variance amplify it.
  It is also the layer whose large weights saturate VPMADDUBSW on AVX2 (see cpu.py); it costs a few % of the FLOPs;
- the last one (the classifier): it writes the logits whose argmax is the answer, for a negligible cost.
`export_int8` then checks the result on held-out inputs and keeps more leading layers fp32 when that is not enough.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from seehear.engine.checkpoint import atomic_write
from seehear.errors import SeehearError

CALIBRATION_BATCH = 32
STATIC_OPS = ("Conv", "MatMul", "Gemm")
RECURRENT_OPS = ("LSTM", "GRU")  # always dynamic: ORT's static (QDQ) quantizer has no recurrent operators
METHODS = ("minmax", "percentile", "entropy")
FRONTEND = "/frontend/"  # node-name prefix of the Recognizer's front end in the exported graph: always fp32


def preprocess(onnx_path: str | Path, out: str | Path) -> Path:
    """ORT's pre-processing (shape inference, graph clean-up), and a name for every node so that plans can name
    the ones to keep fp32."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(onnx_path), str(out), skip_symbolic_shape=True)
    m = onnx.load(str(out))
    for i, n in enumerate(m.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    onnx.save(m, str(out))
    return Path(out)


def quantizable_nodes(onnx_path: str | Path) -> list[tuple[str, str]]:
    """(name, op_type) of the backbone layers int8 can replace, in graph (topological) order: stem first,
    classifier last. The front end is not among them: it stays float."""
    import onnx

    g = onnx.load(str(onnx_path)).graph
    weights = {t.name for t in g.initializer}
    out = []
    for n in g.node:
        if n.name.startswith(FRONTEND):  # the STFT-as-convolution of the log-mel front end reads raw samples
            continue
        if n.op_type in RECURRENT_OPS or (n.op_type in STATIC_OPS and any(i in weights for i in n.input[1:2])):
            out.append((n.name, n.op_type))
    return out


def default_fp32_nodes(nodes: list[tuple[str, str]]) -> list[str]:
    """The stem and the classifier (see the module docstring); none when the model has only one or two layers."""
    names = [n for n, _ in nodes]
    return [names[0], names[-1]] if len(names) > 2 else []


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}
    if name not in table:
        raise SeehearError(f"calibration method {name!r} unknown; use one of {', '.join(METHODS)}")
    return table[name]


def quantize_prepared(pre: str | Path, out: str | Path, calibration: np.ndarray, *, fp32_nodes: list[str],
                      dynamic_matmul: bool = False, method: str = "minmax", reduce_range: bool = False,
                      batch: int = CALIBRATION_BATCH) -> Path:
    """Quantize a `preprocess`ed model to `out` (a plain write: callers pass a temporary path). Convolutions (and
    MatMul/Gemm unless `dynamic_matmul`) static; recurrent layers (and MatMul/Gemm if `dynamic_matmul`) dynamic."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, \
        quantize_static

    if method != "minmax":  # ORT's histogram collectors stack batches: they must all be the same size
        batch = min(batch, len(calibration))
        calibration = calibration[:len(calibration) - len(calibration) % batch]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    nodes = quantizable_nodes(pre)
    keep = set(fp32_nodes)
    dyn_types = set(RECURRENT_OPS) | ({"MatMul", "Gemm"} if dynamic_matmul else set())
    static = [n for n, t in nodes if n not in keep and t not in dyn_types]
    dynamic = [n for n, t in nodes if n not in keep and t in dyn_types]
    if not static and not dynamic:
        raise SeehearError("int8 quantization: every layer would stay fp32, so there is nothing to quantize")
    out, src = Path(out), Path(pre)
    if static:
        step = out if not dynamic else out.with_name(out.stem + ".static.onnx")
        # Per-channel int8 weights (each filter its own scale); MinMax by default, as the stem is fp32 anyway.
        quantize_static(str(src), str(step), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=_method(method), nodes_to_quantize=static,
                        op_types_to_quantize=sorted({t for n, t in nodes if n in static}))
        src = step
    if dynamic:
        quantize_dynamic(str(src), str(out), per_channel=True, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8, nodes_to_quantize=dynamic,
                         op_types_to_quantize=sorted({t for n, t in nodes if n in dynamic}))
    return out


def quantize_int8(onnx_path: str | Path, out: str | Path, calibration: np.ndarray, *,
                  fp32_nodes: list[str] | None = None, dynamic_matmul: bool = False, method: str = "minmax",
                  reduce_range: bool | None = None, batch: int = CALIBRATION_BATCH) -> Path:
    """Write an int8 copy of `onnx_path` to `out` (atomically), calibrated on `calibration` (model inputs, e.g. 256
    uint8 training images [N, C, H, W]) fed `batch` at a time. `fp32_nodes`: node names to keep fp32 (default: the
    stem and the classifier); `reduce_range`: 7-bit weights (default: on CPUs without VNNI, see cpu.py). This does
    not check the result: `export_int8` does."""
    from seehear.deploy.cpu import int8_isa

    if len(calibration) == 0:
        raise SeehearError("int8 quantization needs calibration inputs (a few hundred training examples)")
    if reduce_range is None:
        reduce_range = int8_isa()["saturates"]
    out = Path(out)
    with tempfile.TemporaryDirectory() as d:
        pre = preprocess(onnx_path, Path(d) / "pre.onnx")
        keep = default_fp32_nodes(quantizable_nodes(pre)) if fp32_nodes is None else list(fp32_nodes)
        q = quantize_prepared(pre, Path(d) / "q.onnx", calibration, fp32_nodes=keep, dynamic_matmul=dynamic_matmul,
                              method=method, reduce_range=reduce_range, batch=batch)
        atomic_write(out, lambda tmp: shutil.copyfile(q, tmp))
    return out


def export_int8(run_dir: str | Path, calibration_data: str | Path, out: str | Path | None = None,
                **kwargs) -> tuple[Path, dict]:
    """`seehear export RUN --int8 DATA`: see seehear.deploy.int8_check.export_int8."""
    from seehear.deploy.int8_check import export_int8 as checked

    return checked(run_dir, calibration_data, out, **kwargs)

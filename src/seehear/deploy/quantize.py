"""int8 post-training quantization of an exported ONNX model, with ONNX Runtime's own tools.

Static quantization: weights int8 per output channel, activations uint8 with ranges calibrated on a few hundred
real inputs; QDQ format, which ORT fuses into integer convolutions and matrix products (VNNI on CPUs that have
it). Only the convolutions and matrix products are quantized; the front end (pixel scaling, log-mel) stays
float, so the model still takes the raw input `predict` takes. Check the accuracy of the result on held-out data
(`bench/cifar10.py` does) before shipping it: calibration is cheap, a lost point of accuracy is not.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from seehear.engine.checkpoint import atomic_write
from seehear.errors import SeehearError

CALIBRATION_BATCH = 32
CALIBRATION_EXAMPLES = 256  # inputs drawn from the calibration data (evenly spread over its files)
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


def quantize_int8(onnx_path: str | Path, out: str | Path, calibration: np.ndarray,
                  batch: int = CALIBRATION_BATCH) -> Path:
    """Write an int8 copy of `onnx_path` to `out`, calibrated on `calibration` (a batch of model inputs, e.g.
    256 uint8 training images [N, C, H, W]), fed `batch` at a time (1 for a graph exported with a fixed batch)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise SeehearError("int8 quantization needs calibration inputs (a few hundred training examples)")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    out = Path(out)
    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)  # shapes + graph clean-up first

        def write(tmp: str) -> None:
            quantize_static(str(pre), tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            op_types_to_quantize=QUANTIZED_OPS)

        atomic_write(out, write)
    return out


def export_int8(run_dir: str | Path, calibration_data: str | Path, out: str | Path | None = None) -> tuple[Path, dict]:
    """`seehear export RUN --int8 DATA`: the run's ONNX model and its int8 copy, calibrated on up to
    CALIBRATION_EXAMPLES inputs decoded from DATA (a folder or manifest like the training data; labels are not
    needed). Returns the int8 path and how often its top-1 prediction agrees with the fp32 graph on them."""
    import torch

    from seehear.data.cache import decode_all
    from seehear.data.sources import load_source
    from seehear.deploy.onnx import export_onnx, onnx_session
    from seehear.engine.run_folder import load_run

    run = load_run(run_dir)
    fp32 = export_onnx(run_dir)
    source = load_source(calibration_data, modality=run.modality)
    recs = source.records
    if len(recs) > CALIBRATION_EXAMPLES:
        recs = [recs[int(i)] for i in torch.linspace(0, len(recs) - 1, CALIBRATION_EXAMPLES).long()]
    decoded = decode_all(recs, run.cfg, run.modality, progress=False)
    if len(decoded.keep) == 0:
        raise SeehearError(f"none of the {len(recs)} calibration files in {calibration_data} could be decoded")
    x = decoded.x
    if x.dtype == torch.int16:  # cached audio; the exported graph takes float samples
        x = x.float() / 32767.0
    x = x.numpy()
    out = Path(out) if out else Path(run.run_dir) / "model.int8.onnx"
    quantize_int8(fp32, out, x)
    ref = onnx_session(fp32).run(None, {"input": x})[0].argmax(1)
    got = onnx_session(out).run(None, {"input": x})[0].argmax(1)
    return out, {"calibration_examples": int(len(x)), "skipped": len(decoded.skipped),
                 "top1_agreement_with_fp32": round(float((ref == got).mean()), 4)}

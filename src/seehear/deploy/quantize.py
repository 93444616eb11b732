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
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


def quantize_int8(onnx_path: str | Path, out: str | Path, calibration: np.ndarray) -> Path:
    """Write an int8 copy of `onnx_path` to `out`, calibrated on `calibration` (a batch of model inputs, e.g.
    256 uint8 training images [N, C, H, W])."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise SeehearError("int8 quantization needs calibration inputs (a few hundred training examples)")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + CALIBRATION_BATCH]}
                                 for i in range(0, len(calibration), CALIBRATION_BATCH)])

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

"""Export a run's whole Recognizer — front end included — to ONNX, and check it against PyTorch.

The exported graph takes what `predict` takes: uint8 pixels [B, C, H, W] for images ([B, T, C, H, W] for image
sequences), float32 samples [B, S] at the run's sample rate for audio; it returns logits [B, K]. The batch axis is
dynamic.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from seehear.engine.checkpoint import atomic_write
from seehear.engine.run_folder import load_run
from seehear.errors import SeehearError

OPSET = 18


def example_input(meta_input: dict, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if meta_input["modality"] == "image":
        c, s = meta_input["channels"], meta_input["size"]
        return torch.randint(0, 256, (batch, c, s, s), dtype=torch.uint8, generator=g)
    if meta_input["modality"] == "frames":  # image sequences: uint8 [B, T, C, H, W]
        t, c, s = meta_input["frames"], meta_input["channels"], meta_input["size"]
        return torch.randint(0, 256, (batch, t, c, s, s), dtype=torch.uint8, generator=g)
    return 0.1 * torch.randn(batch, meta_input["num_samples"], generator=g)


def export_onnx(run_dir: str | Path, out: str | Path | None = None, check: bool = True) -> Path:
    run = load_run(run_dir)
    if run.modality == "audio-image":
        raise SeehearError(f"{run_dir} is an audio-image run: ONNX export of two-input fused models is not "
                           f"supported yet; use `seehear predict {run_dir} --image F --audio F`")
    out = Path(out) if out else run.run_dir / "model.onnx"
    x = example_input(run.meta["input"])
    model = run.model.eval()

    def write(tmp: str) -> None:
        fastpath = torch.backends.mha.get_fastpath_enabled()
        # Transformer layers in eval take a fused kernel (_transformer_encoder_layer_fwd) that has no ONNX mapping;
        # the plain path computes the same and exports.
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            export(tmp)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)

    def export(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript-based exporter: mature for these conv/LSTM/attention graphs and quick on CPU.
            torch.onnx.export(model, (x,), tmp, input_names=["input"], output_names=["logits"], opset_version=OPSET,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)

    try:
        atomic_write(out, write)
    except Exception as e:  # an operator without an ONNX mapping is a limitation to report, not a crash
        raise SeehearError(f"model {run.meta['model']['name']} could not be exported to ONNX: "
                           f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    atomic_write(out.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(
        {"labels": run.labels, "input": run.meta["input"], "output": "logits"}, indent=2)))
    if check:
        err = max_abs_difference(run.model, out, example_input(run.meta["input"], batch=3, seed=1))
        if err > 1e-3:
            raise SeehearError(f"ONNX export of {run_dir} differs from PyTorch by {err:.2e} (> 1e-3)")
    return out


def onnx_session(path: str | Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def max_abs_difference(model: torch.nn.Module, path: str | Path, x: torch.Tensor) -> float:
    with torch.no_grad():
        ref = model.eval()(x).float().numpy()
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    return float(np.abs(ref - got).max())

"""Export a run's whole Recognizer — front end included — to ONNX, and check it against PyTorch.

The exported graph takes what `predict` takes: uint8 pixels [B, C, H, W] for images ([B, T, C, H, W] for image
sequences), float32 samples [B, S] at the run's sample rate for audio; it returns logits [B, K]. The batch axis is
dynamic.

An audio-image run's graph has three inputs: `image` uint8 [B, C, H, W], `audio` float32 [B, S] and `present`
float32 [B, 2] (1 where the example's image / recording is real, 0 where it is missing). A missing input is still
fed (zeros will do): the model zeroes that branch's embedding and tells the fusion it is absent, so image-only and
audio-only examples (even mixed in one batch) get what PyTorch gives with that input left out.
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
PAIR_INPUTS = ("image", "audio", "present")  # the graph inputs of an audio-image run


def example_input(meta_input: dict, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if meta_input["modality"] == "image":
        c, s = meta_input["channels"], meta_input["size"]
        return torch.randint(0, 256, (batch, c, s, s), dtype=torch.uint8, generator=g)
    if meta_input["modality"] == "frames":  # image sequences: uint8 [B, T, C, H, W]
        t, c, s = meta_input["frames"], meta_input["channels"], meta_input["size"]
        return torch.randint(0, 256, (batch, t, c, s, s), dtype=torch.uint8, generator=g)
    return 0.1 * torch.randn(batch, meta_input["num_samples"], generator=g)


def example_pair(meta_input: dict, batch: int = 2, seed: int = 0, present=(1.0, 1.0)) -> dict[str, torch.Tensor]:
    """The three inputs of an audio-image graph; an input marked absent in `present` is fed as zeros."""
    image, audio = example_input(meta_input["image"], batch, seed), example_input(meta_input["audio"], batch, seed + 1)
    p = torch.tensor(present, dtype=torch.float32).expand(batch, 2).contiguous()
    return {"image": image * (p[:, :1, None, None] > 0), "audio": audio * p[:, 1:], "present": p}


def export_onnx(run_dir: str | Path, out: str | Path | None = None, check: bool = True) -> Path:
    run = load_run(run_dir)
    out = Path(out) if out else run.run_dir / "model.onnx"
    pair = run.modality == "audio-image"
    model = run.model.eval()
    if pair:  # keyword inputs: forward(image, audio, present)
        x, names = tuple(example_pair(run.meta["input"]).values()), list(PAIR_INPUTS)
    else:
        x, names = (example_input(run.meta["input"]),), ["input"]

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
            torch.onnx.export(model, x, tmp, input_names=names, output_names=["logits"], opset_version=OPSET,
                              dynamic_axes={**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}},
                              dynamo=False)

    try:
        atomic_write(out, write)
    except Exception as e:  # an operator without an ONNX mapping is a limitation to report, not a crash
        raise SeehearError(f"model {run.meta['model'].get('name', run.modality)} could not be exported to ONNX: "
                           f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    atomic_write(out.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(
        {"labels": run.labels, "input": run.meta["input"], "inputs": names, "output": "logits"}, indent=2)))
    if check:
        err = pair_difference(run.model, out, run.meta["input"]) if pair else \
            max_abs_difference(run.model, out, example_input(run.meta["input"], batch=3, seed=1))
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


def pair_difference(model: torch.nn.Module, path: str | Path, meta_input: dict) -> float:
    """The largest difference between an audio-image graph and PyTorch over the three views: both inputs, the image
    alone and the recording alone, where PyTorch is given the missing input as None (as predict does) and the graph
    zeros with present = 0."""
    sess, worst = onnx_session(path), 0.0
    for seed, present in enumerate(((1.0, 1.0), (1.0, 0.0), (0.0, 1.0))):
        x = example_pair(meta_input, batch=3, seed=seed + 1, present=present)
        with torch.no_grad():
            ref = model.eval()(x["image"] if present[0] else None, x["audio"] if present[1] else None).float().numpy()
        got = sess.run(None, {k: v.numpy() for k, v in x.items()})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst

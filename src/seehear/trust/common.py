"""What every trust measurement needs: raw inputs turned into what the Recognizer takes, logits in batches, and
the pixel/wave scale attacks and corruptions work in."""
from __future__ import annotations

import torch

from seehear.data.decode import pcm_to_float
from seehear.engine.trainer import bf16_supported

PIXEL_MAX = 255.0


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def to_signal(model, x: torch.Tensor) -> torch.Tensor:
    """Raw inputs as float in the scale perturbations are measured in: pixels 0..255, or waves -1..1."""
    if model.modality == "audio":
        return pcm_to_float(x)
    return x.float()


def forward_signal(model, s: torch.Tensor) -> torch.Tensor:
    """Logits (temperature included) of signal-scale input. ImageNormalize reads float pixels as 0..1, so the
    0..255 scale is divided here; gradients flow back to the 0..255 pixels."""
    return model(s / PIXEL_MAX if model.modality == "image" else s)


def use_bf16(model, precision: str) -> bool:
    return str(precision) in ("auto", "bf16", "bf16-mixed") and bf16_supported(model_device(model).type)


@torch.no_grad()
def batched_logits(model, x: torch.Tensor, batch_size: int = 256, precision: str = "32",
                   raw: bool = False) -> torch.Tensor:
    """Float32 logits of raw inputs (uint8 images or int16/float waves) in batches; raw=True: before the
    temperature (what temperature scaling is fitted on)."""
    model.eval()
    dev = model_device(model)
    out = []
    step = max(1, batch_size // getattr(model, "views", 1))
    for i in range(0, len(x), step):
        xb = x[i:i + step].to(dev)
        if model.modality == "audio" and xb.dtype == torch.int16:
            xb = pcm_to_float(xb)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16(model, precision)):
            z = model.logits(xb) if raw else model(xb)
        out.append(z.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(model.labels))


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")

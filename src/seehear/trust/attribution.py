"""Attributions over the Recognizer's features (normalised pixels, or the log-mel spectrogram for audio) with
captum: Grad-CAM on the backbone's last convolution, integrated gradients, occlusion. Maps come back as
[B, H, W] (images) or [B, F, T] (audio features), non-negative, one per input, for the target class.

Working in feature space makes one code path serve both modalities: the frontend is fixed preprocessing, and
what the backbone looks at is what a person can be shown (the image, the spectrogram).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from seehear.data.decode import pcm_to_float

METHODS = ("gradcam", "ig", "occlusion")
SEQUENCE_LAYERS = (nn.LSTM, nn.GRU, nn.RNN, nn.MultiheadAttention, nn.TransformerEncoderLayer)


def backbone_fn(model):
    """features -> logits (temperature included, no test-time views): what attributions differentiate."""
    return lambda f: model.backbone(f) / model.temperature


@torch.no_grad()
def features_of(model, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    x = pcm_to_float(x) if x.dtype == torch.int16 else x
    return model.features(x.to(next(model.parameters()).device)).float().contiguous()


def last_conv(model, f: torch.Tensor) -> tuple[nn.Module | None, str]:
    """The convolution that runs last in a forward pass with spatial (or temporal) extent left, found by running
    one input with hooks (module order in the class is not execution order). None, with the reason, for models
    whose last stages mix positions globally (LSTM, attention), where a conv map would not be what decides."""
    seq = [type(m).__name__ for m in model.backbone.modules() if isinstance(m, SEQUENCE_LAYERS)
           or "attention" in type(m).__name__.lower()]
    if seq:
        return None, f"the model mixes positions with {seq[0]}: Grad-CAM does not apply, integrated gradients used"
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m) if o.shape[2:].numel() > 1 else None)
             for m in model.backbone.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    try:
        with torch.no_grad():
            model.backbone(f[:1])
    finally:
        for h in hooks:
            h.remove()
    if not order:
        return None, "the model has no convolution with a spatial map: integrated gradients used instead"
    return order[-1], ""


def _to_map(a: torch.Tensor, size) -> torch.Tensor:
    """Any [B, ...] layer map to [B, H, W] of the features (1-D maps over time are spread over frequency)."""
    if a.dim() == 3:  # [B, 1, T] from a Conv1d over time
        a = F.interpolate(a, size=size[1], mode="linear", align_corners=False)[:, :, None].expand(-1, -1, size[0], -1)
    else:
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
    return a[:, 0]


def attribute(model, x: torch.Tensor, target: torch.Tensor | None = None, method: str = "gradcam",
              batch_size: int = 16, ig_steps: int = 32) -> tuple[torch.Tensor, torch.Tensor, str, str]:
    """(maps [B, H, W], target [B], method actually used, note) for raw inputs x; target defaults to the
    predicted class. Batched so that memory stays bounded (IG runs ig_steps inputs per example)."""
    from captum.attr import IntegratedGradients, LayerGradCam, Occlusion

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    f = features_of(model, x)
    fn = backbone_fn(model)
    if target is None:
        with torch.no_grad():
            target = torch.cat([fn(f[i:i + 256]).argmax(1) for i in range(0, len(f), 256)])
    note, used, layer = "", method, None
    if method == "gradcam":
        layer, note = last_conv(model, f)
        if layer is None:
            used = "ig"
    size = f.shape[-2:]
    out = []
    for i in range(0, len(f), batch_size):
        fb, tb = f[i:i + batch_size].clone().requires_grad_(True), target[i:i + batch_size].to(f.device)
        if used == "gradcam":
            a = LayerGradCam(fn, layer).attribute(fb, target=tb, relu_attributions=True)
            a = _to_map(a.float(), size)
        elif used == "ig":
            a = IntegratedGradients(fn).attribute(fb, baselines=torch.zeros_like(fb), target=tb, n_steps=ig_steps,
                                                  internal_batch_size=max(1, batch_size * 4))
            a = a.abs().sum(1)  # evidence for or against, summed over channels: where the model looked
        else:
            c = fb.shape[1]
            wh, ww = max(1, size[0] // 8), max(1, size[1] // 8)
            a = Occlusion(fn).attribute(fb, sliding_window_shapes=(c, wh, ww),
                                        strides=(c, max(1, wh // 2), max(1, ww // 2)), baselines=0.0, target=tb,
                                        perturbations_per_eval=16)
            a = a.sum(1).clamp(min=0)  # positive: occluding there lowers the target's score
        out.append(a.detach().float().cpu())
    return torch.cat(out), target.cpu(), used, note

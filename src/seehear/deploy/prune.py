"""Structured channel pruning of a Recognizer's backbone with torch-pruning (Fang et al., CVPR 2023, DepGraph).

Whole channels go (conv filters together with the BatchNorm entries and the next layer's inputs that depend on
them), so the pruned model is a smaller dense model that every runtime speeds up — unlike masked weights. Channels
are ranked by the L2 norm of their group's weights. The first layer (fastnet's frozen whitening stem reads raw
features) and the classifier (one output per label) keep their shapes, and so do recurrent layers.

The registry builds the unpruned shapes, so the run folder records every tensor's shape and the layer attributes
(`shape_record`) and run_folder.load_run resizes the freshly built model to them before loading the weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.data.decode import pcm_to_float
from seehear.errors import SeehearError

SHAPE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")


def _round_to(model: nn.Module) -> int | None:
    """Keep channel counts multiples of 8 (SIMD width of int8 and fp32 kernels) where layers are wide enough."""
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv1d)]
    return 8 if widths and min(widths) >= 16 else None


def prune_channels(model: nn.Module, ratio: float, example: torch.Tensor) -> nn.Module:
    """Remove `ratio` of the prunable channels of `model.backbone` (a Recognizer) in place; `example` is a raw input
    batch (what `predict` takes). Returns the model."""
    import torch_pruning as tp

    if not 0.0 < ratio < 1.0:
        raise SeehearError(f"--prune {ratio}: give the fraction of channels to remove, between 0 and 1 (e.g. 0.5)")
    backbone = model.backbone
    model.eval()
    with torch.no_grad():
        feats = model.features(pcm_to_float(example) if example.dtype == torch.int16 else example)
    layers = [m for m in backbone.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)]
    recurrent = [m for m in backbone.modules() if isinstance(m, nn.LSTM | nn.GRU | nn.RNN | nn.MultiheadAttention)]
    n_classes = len(model.labels)
    heads = [m for m in layers if getattr(m, "out_features", getattr(m, "out_channels", None)) == n_classes]
    ignored = list(dict.fromkeys(layers[:1] + heads[-1:] + recurrent))
    try:
        pruner = tp.pruner.MetaPruner(backbone, feats, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored, round_to=_round_to(backbone))
        pruner.step()
        with torch.no_grad():  # a reshape torch-pruning could not trace (conv -> LSTM, say) shows up here
            model(pcm_to_float(example) if example.dtype == torch.int16 else example)
    except Exception as e:  # a layer type torch-pruning cannot trace is a limitation to report, not a crash
        raise SeehearError(f"model {type(backbone).__name__} could not be channel-pruned: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}") from None
    return model


def shape_record(model: nn.Module) -> dict:
    """What load_run needs to rebuild a pruned model: the shape of every tensor and the layers' size attributes."""
    tensors = {k: list(v.shape) for k, v in model.state_dict().items()}
    attrs = {}
    for name, m in model.named_modules():
        a = {k: getattr(m, k) for k in SHAPE_ATTRS if isinstance(getattr(m, k, None), int)}
        if a:
            attrs[name] = a
    return {"tensor_shapes": tensors, "module_attrs": attrs}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

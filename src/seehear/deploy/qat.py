"""Quantization-aware training (QAT): a short fine-tune with int8 rounding simulated, for when post-training
quantization (PTQ) of a compressed model loses more than half a point of accuracy.

The standard route with ONNX Runtime: fine-tune in PyTorch with fake quantization (torch.ao.quantization
FakeQuantize: quantize-dequantize in the forward pass, straight-through gradients) on exactly the layers ORT will
make int8, then export the fine-tuned fp32 weights and quantize them with ORT's static quantizer as before
(int8_check.export_int8: calibrated, checked, written only if it agrees). The weights have learnt to sit where
int8 rounding does little harm; ORT re-calibrates the activation ranges on real inputs.

What is simulated mirrors quantize.py:
- layers: the backbone's convolutions and linear layers, except the first (and as many following ones as the
  PTQ plan kept fp32) and the classifier; recurrent layers are quantized dynamically by ORT and left alone here;
  the front end is never quantized;
- weights: int8 per output channel, symmetric, [-127, 127] as ORT's QInt8 per-channel weights — [-64, 64]
  (reduce_range) on CPUs without VNNI (cpu.py). Per-channel symmetric rounding commutes with the per-channel
  scale of a BatchNorm folded into the convolution at export, so fake-quantizing the unfolded weight is exact;
- activations: uint8 per tensor, asymmetric, min/max ranges (moving average), at the input of each such layer and
  at its output (QDQ puts a Q/DQ pair on both), after its BatchNorm when one follows directly (folded at export).
BatchNorm layers keep their running statistics during the fine-tune (distill.finetune frozen_norm), so the
training forward pass is the function the exported graph computes. The loss distills from the model as it was
before QAT: the fp32 model is what the int8 copy should agree with.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from seehear.data.decode import pcm_to_float

MAX_PTQ_DROP = 0.005  # auto mode: QAT when PTQ's int8 accuracy drop on held-out inputs exceeds this
QAT_EPOCHS = 1
QAT_LR = 1e-4  # a fine-tune of a trained model: a tenth of compress's pruning fine-tune
QAT_MIN_STEPS = 30  # a small training split still gets this many steps (distill.finetune's min_steps)
LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def ptq_drop(info: dict | None) -> float | None:
    """The accuracy an int8 copy loses against its fp32 model on export_int8's held-out check inputs; without
    labels, the share of those inputs whose top-1 changed (at least the accuracy drop). None: PTQ was refused."""
    if not info:
        return None
    if "accuracy_int8" in info:
        return round(info["accuracy_fp32"] - info["accuracy_int8"], 4)
    return round(1.0 - info["top1_agreement_with_fp32"], 4)


def wants_qat(mode: bool | None, drop: float | None) -> bool:
    """mode True/False: as told; None (auto): when PTQ lost more than MAX_PTQ_DROP, or was refused."""
    if mode is not None:
        return bool(mode)
    return drop is None or drop > MAX_PTQ_DROP


def backbone_layers(model: nn.Module, example: torch.Tensor) -> list[dict]:
    """The backbone's weight layers in the order a forward pass first runs them (the exported graph's order):
    {"name", "module", "recurrent", "norm": the BatchNorm that directly reads its output, or None}."""
    found: dict[str, dict] = {}
    norm_inputs: dict[int, nn.Module] = {}
    keep: list[torch.Tensor] = []  # holds every tensor seen, so that no id is reused during the probe
    hooks = []

    def on_layer(name):
        def hook(m, args, out):
            t = out[0] if isinstance(out, tuple) else out
            keep.append(t)
            found.setdefault(name, {"name": name, "module": m, "recurrent": isinstance(m, RECURRENT), "out": id(t)})
        return hook

    def on_norm(m, args):
        keep.append(args[0])
        norm_inputs.setdefault(id(args[0]), m)

    for name, m in model.backbone.named_modules():
        if isinstance(m, LAYERS + RECURRENT):
            hooks.append(m.register_forward_hook(on_layer(name)))
        elif isinstance(m, NORMS):
            hooks.append(m.register_forward_pre_hook(on_norm))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(pcm_to_float(example) if example.dtype == torch.int16 else example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    layers = list(found.values())
    for layer in layers:
        norm = norm_inputs.get(layer.pop("out"))
        layer["norm"] = norm if isinstance(layer["module"], nn.Conv1d | nn.Conv2d) else None  # ONNX folds conv+BN
    return layers


def targets(layers: list[dict], fp32_leading: int = 1, fp32_last: bool = True) -> list[dict]:
    """The layers ORT will make static int8: not the first `fp32_leading`, not the last (the classifier) when
    `fp32_last`, and no recurrent layer. Models of one or two layers are all int8 (quantize.default_fp32_nodes)."""
    if len(layers) <= 2:
        fp32_leading, fp32_last = 0, False
    chosen = layers[fp32_leading:len(layers) - (1 if fp32_last else 0)]
    return [layer for layer in chosen if not layer["recurrent"]]


def weight_fake_quant(reduce_range: bool):
    from torch.ao.quantization import FakeQuantize, PerChannelMinMaxObserver

    q = 64 if reduce_range else 127
    return FakeQuantize(observer=PerChannelMinMaxObserver, quant_min=-q, quant_max=q, dtype=torch.qint8,
                        qscheme=torch.per_channel_symmetric, ch_axis=0)


def activation_fake_quant():
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


class FakeQuant:
    """Fake quantization put into `model` in place on `layers` (from `targets`); `remove()` takes it all out again
    and leaves a plain model with the fine-tuned weights (the state dict of an untouched model)."""

    def __init__(self, layers: list[dict], reduce_range: bool):
        self.layers, self.hooks, self.observers = [m["module"] for m in layers], [], nn.ModuleList()
        for layer in layers:
            m = layer["module"]
            parametrize.register_parametrization(m, "weight", weight_fake_quant(reduce_range))
            fq_in, fq_out = activation_fake_quant(), activation_fake_quant()
            self.observers.extend([fq_in, fq_out])
            self.hooks.append(m.register_forward_pre_hook(lambda _m, args, fq=fq_in: (fq(args[0]), *args[1:])))
            site = layer["norm"] if layer["norm"] is not None else m
            self.hooks.append(site.register_forward_hook(lambda _m, _a, out, fq=fq_out: fq(out)))

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
        for m in self.layers:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)  # the float weights
        self.hooks, self.layers = [], []


def qat_finetune(model: nn.Module, train, *, teacher: nn.Module, example: torch.Tensor, reduce_range: bool,
                 fp32_leading: int = 1, fp32_last: bool = True, epochs: int = QAT_EPOCHS, lr: float = QAT_LR) -> dict:
    """Fine-tune `model` (a Recognizer, in place) on `train` (distill.Split) with fake quantization on the layers
    that will be int8, distilling from `teacher` (the fp32 model before QAT); then take the fake quantization out.
    `example`: a raw input batch to trace the layer order with. Returns what was done, for compress.json."""
    from seehear.deploy.distill import finetune

    layers = backbone_layers(model, example)
    chosen = targets(layers, fp32_leading, fp32_last)
    fq = FakeQuant(chosen, reduce_range)
    try:
        # at least QAT_MIN_STEPS steps: a small training split gets more epochs than asked
        losses = finetune(model, train, teacher=teacher, epochs=epochs, lr=lr, frozen_norm=True,
                          min_steps=QAT_MIN_STEPS)
    finally:
        fq.remove()
    model.eval()
    return {"epochs": len(losses), "lr": lr, "examples": int(len(train.y)), "loss_per_epoch": losses,
            "teacher": "the fp32 model before QAT", "fake_quantized_layers": [f"backbone.{m['name']}" for m in chosen],
            "fp32_layers": [f"backbone.{m['name']}" for m in layers if m not in chosen],
            "weights": f"int8 per channel, symmetric, [-{64 if reduce_range else 127}, "
                       f"{64 if reduce_range else 127}]", "activations": "uint8 per tensor, min/max"}

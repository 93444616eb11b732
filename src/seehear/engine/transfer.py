"""Transfer learning from another seehear run (`seehear train DATA --from runs/OTHER`, config `model.init_from`).

The source run's backbone weights (its model.safetensors) start the new model through the registry's
`load_pretrained`: a fresh head when the classes differ, the first convolution adapted to another channel count,
and a ConfigError naming every tensor that does not fit. The new run's meta.json records the source folder and the
SHA-256 of the weights it started from, so a result can be traced to exactly those weights.

What trains when: `train.freeze_epochs` epochs with only the head learning, then everything, the backbone at
`train.backbone_lr_scale` times the learning rate (engine/base_module.py applies both, using `head_parameters`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch.nn as nn

from seehear.atomic import read_json
from seehear.config import RunConfig
from seehear.errors import ConfigError, RunError
from seehear.models.registry import load_pretrained


def head_module(backbone: nn.Module) -> nn.Module | None:
    """The classifier head: the registry's `classifier` attribute, else the last nn.Linear in the backbone."""
    head = getattr(backbone, "classifier", None)
    if isinstance(head, nn.Module):
        return head
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def head_parameters(backbone: nn.Module) -> set[int]:
    """ids of the head's parameters (what keeps the full learning rate and trains while the rest is frozen)."""
    head = head_module(backbone)
    return {id(p) for p in head.parameters()} if head is not None else set()


def source_meta(run_dir: str | Path) -> dict:
    """meta.json of a finished run to transfer from; RunError (one line) when it is not one."""
    run = Path(run_dir).expanduser()
    if not (run / "meta.json").is_file() or not (run / "model.safetensors").is_file():
        raise RunError(f"--from {run}: not a finished seehear run folder (it needs meta.json and "
                       f"model.safetensors); train one first with `seehear train DATA --out {run}`")
    meta = read_json(run / "meta.json")
    if not isinstance(meta, dict) or "config" not in meta or "modality" not in meta:
        raise RunError(f"--from {run}: meta.json is not a seehear run description")
    return meta


def source_defaults(meta: dict) -> dict:
    """Settings the new run takes from its source unless the user set them: the architecture and input form."""
    cfg = meta["config"]
    out = {"model": {"name": cfg["model"]["name"], "kwargs": dict(cfg["model"].get("kwargs") or {})}}
    if meta["modality"] == "image":
        out["image"] = {"size": cfg["image"]["size"], "channels": cfg["image"]["channels"]}
    else:
        out["audio"] = {k: cfg["audio"][k] for k in ("sample_rate", "clip_seconds", "features", "n_mels", "n_mfcc",
                                                     "n_fft", "win_length", "hop_length")}
    return out


def check_modality(meta: dict, modality: str, run_dir) -> None:
    if meta["modality"] != modality:
        raise ConfigError(f"--from {run_dir} is an {meta['modality']} run but the data is {modality}: transfer "
                          f"from a run trained on {modality}")


def check_fits(meta: dict, cfg: RunConfig, modality: str, run_dir) -> None:
    """The source must see the same kind of input: its modality and input size (channels may differ)."""
    check_modality(meta, modality, run_dir)
    src = meta.get("input") or {}
    if modality == "image" and src.get("size") not in (None, cfg.image.size):
        raise ConfigError(f"--from {run_dir} was trained on {src['size']}x{src['size']} images but this run uses "
                          f"{cfg.image.size}x{cfg.image.size}; drop --set image.size or use "
                          f"--set image.size={src['size']}")
    if modality == "audio":
        from seehear.models.recognizer import input_spec

        want = input_spec(cfg, modality)["feature_shape"]
        if src.get("feature_shape") not in (None, want):
            raise ConfigError(f"--from {run_dir} was trained on features of shape {src['feature_shape']} but this "
                              f"run makes {want}; use the source's audio settings (clip_seconds, features, n_mels)")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def init_from_run(model, run_dir: str | Path, cfg: RunConfig, modality: str) -> dict:
    """Load the source run's backbone into `model` (a Recognizer); returns what meta.json records."""
    run = Path(run_dir).expanduser().resolve()
    meta = source_meta(run)
    check_fits(meta, cfg, modality, run_dir)
    weights = run / "model.safetensors"
    head = head_module(model.backbone)
    head_name = next((n for n, m in model.backbone.named_modules() if m is head), "classifier")
    first = next((n for n, m in model.backbone.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv1d))), None)
    load_pretrained(model.backbone, weights, first_conv=first, classifier=head_name,
                    name=f"{cfg.model.name} (from {run_dir})")
    same = list(meta.get("labels") or []) == list(model.labels)
    if not same and head is not None and hasattr(head, "reset_parameters"):
        head.reset_parameters()  # same number of classes but other labels: the old head would mislead
    return {"from": str(run), "weights": str(weights), "sha256": sha256(weights), "source_task": meta.get("task"),
            "source_model": meta["config"]["model"]["name"], "head": "kept" if same else "new",
            "freeze_epochs": cfg.train.freeze_epochs, "backbone_lr_scale": cfg.train.backbone_lr_scale}

"""Transfer learning from another seehear run (`seehear train DATA --from runs/OTHER`, config `model.init_from`).

The source run's backbone weights (its model.safetensors) start the new model through the registry's
`load_pretrained`: a fresh head when the classes differ, the first convolution adapted to another channel count,
and a ConfigError naming every tensor that does not fit. The new run's meta.json records the source folder and the
SHA-256 of the weights it started from, so a result can be traced to exactly those weights.

What trains when: `train.freeze_epochs` epochs with only the head learning, then everything, the backbone at
`train.backbone_lr_scale` times the learning rate (engine/base_module.py applies both, using `head_parameters`).

Speech encoders (a transcription run, or speech pretraining: `seehear pretrain AUDIO_DIR`) start a transcription
run through `init_encoder`: everything but the unit-output layer, which stays fresh. They start a classification run
as model `ssl_encoder` (models/audio/ssl_encoder.py: the encoder, mean pooling, a linear head). Either way the
features must be made exactly as the source's (FEATURE_KEYS; a difference is named), and a test file the source was
pretrained on is reported (`pretrain_overlap`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch.nn as nn

from seehear.atomic import read_json
from seehear.config import RunConfig
from seehear.errors import ConfigError, RunError
from seehear.models.registry import load_pretrained

# The audio settings that make the features a speech encoder reads: all must match its source's.
FEATURE_KEYS = ("sample_rate", "features", "n_mels", "n_mfcc", "n_fft", "win_length", "hop_length", "f_min", "f_max",
                "normalize")


def head_module(backbone: nn.Module) -> nn.Module | None:
    """The classifier head: the registry's `classifier` attribute, a Transcriber's unit-output layer, else the
    last nn.Linear in the backbone."""
    head = getattr(backbone, "classifier", None)
    if isinstance(head, nn.Module):
        return head
    if isinstance(getattr(backbone, "acoustic", None), nn.Module) and hasattr(backbone.acoustic, "head"):
        from seehear.models.asr.common import output_layer

        return output_layer(backbone.acoustic)
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


def is_speech_encoder(meta: dict) -> bool:
    """Whether a run's model is a transcription encoder (a transcribe run, or speech pretraining)."""
    return meta["modality"] == "audio" and meta["config"].get("task") in ("transcribe", "pretrain")


def source_defaults(meta: dict, task: str = "classify") -> dict:
    """Settings the new run takes from its source unless the user set them: the architecture and input form. A
    speech encoder gives a transcription run its model and a classification run model ssl_encoder around it."""
    cfg = meta["config"]
    if is_speech_encoder(meta):
        name, kwargs = cfg["model"]["name"], dict(cfg["model"].get("kwargs") or {})
        sub = cfg["model"].get("subsample")
        audio = {k: cfg["audio"][k] for k in FEATURE_KEYS}
        if task == "transcribe":
            return {"model": {"name": name, "kwargs": kwargs, "subsample": sub}, "audio": audio}
        kwargs = {**kwargs, **({"subsample": sub} if sub is not None else {})}
        return {"model": {"name": "ssl_encoder", "kwargs": {"encoder": name, **kwargs}}, "audio": audio}
    out = {"model": {"name": cfg["model"]["name"], "kwargs": dict(cfg["model"].get("kwargs") or {})}}
    if meta["modality"] == "image":
        out["image"] = {"size": cfg["image"]["size"], "channels": cfg["image"]["channels"]}
    else:
        out["audio"] = {k: cfg["audio"][k] for k in ("sample_rate", "clip_seconds", "features", "n_mels", "n_mfcc",
                                                     "n_fft", "win_length", "hop_length")}
    return out


def only_unset(defaults: dict, user: dict, overrides) -> dict:
    """`defaults` without the settings the user gave (in the config or as --set section.key=...)."""
    given = {a.split("=", 1)[0].strip() for a in overrides}
    out: dict = {}
    for section, values in defaults.items():
        mine = user.get(section) or {}
        keep = {k: v for k, v in values.items() if k not in mine and f"{section}.{k}" not in given}
        if section == "model" and ("name" in mine or "model.name" in given):
            keep.pop("kwargs", None)  # another architecture: the source's kwargs would not fit it
        if keep:
            out[section] = keep
    return out


def check_features(meta: dict, cfg: RunConfig, run_dir) -> None:
    """A speech encoder reads features made exactly as in its source run: name every setting that differs."""
    src = meta["config"]["audio"]
    keys = [k for k in FEATURE_KEYS if k != "n_mfcc" or cfg.audio.features == "mfcc"]
    diff = [k for k in keys if src.get(k) != getattr(cfg.audio, k)]
    if diff:
        theirs = ", ".join(f"{k}={src.get(k)}" for k in diff)
        mine = ", ".join(f"{k}={getattr(cfg.audio, k)}" for k in diff)
        raise ConfigError(f"--from {run_dir} made its features with audio {theirs} but this run uses {mine}; drop "
                          f"those settings (the source's are the default with --from) or pretrain with these")


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
    if modality == "audio" and is_speech_encoder(meta):
        check_features(meta, cfg, run_dir)
    elif modality == "audio":
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


def check_speech_encoder(meta: dict, run_dir) -> dict:
    """`meta` when its run can start a transcription model; else a ConfigError naming what can."""
    check_modality(meta, "audio", run_dir)
    if not is_speech_encoder(meta):
        raise ConfigError(f"--from {run_dir} is a {meta['config'].get('task')} run of model "
                          f"{meta['config']['model']['name']}, not a speech encoder: a transcription run starts from "
                          f"a transcription run or a speech pretraining run (`seehear pretrain AUDIO_DIR`)")
    return meta


def init_encoder(acoustic: nn.Module, run_dir: str | Path, cfg: RunConfig) -> dict:
    """Start a transcription model (`acoustic`, a models/asr CTC model) from a speech encoder run: every weight but
    the unit-output layer (`head`), which keeps its fresh initialisation. Returns what meta.json records."""
    from seehear.models.asr.common import output_layer

    run = Path(run_dir).expanduser().resolve()
    meta = check_speech_encoder(source_meta(run), run_dir)
    check_features(meta, cfg, run_dir)
    weights = run / "model.safetensors"
    head = output_layer(acoustic)
    fresh = {k: v.clone() for k, v in head.state_dict().items()}
    load_pretrained(acoustic, weights, classifier="head", name=f"{cfg.model.name} (from {run_dir})")
    head.load_state_dict(fresh)  # a new output layer for these units, even when the sizes happen to agree
    return {"from": str(run), "weights": str(weights), "sha256": sha256(weights), "source_task": meta.get("task"),
            "source_model": meta["config"]["model"]["name"], "head": "new", "freeze_epochs": cfg.train.freeze_epochs,
            "backbone_lr_scale": cfg.train.backbone_lr_scale}


def pretrain_overlap(run_dir: str | Path, test_keys: list[str]) -> str | None:
    """A warning when files of the new run's test split were in the source pretraining run's data (by resolved
    path): its test score would then flatter the model. None when there are none (or the source is not one)."""
    run = Path(run_dir).expanduser().resolve()
    meta = read_json(run / "meta.json")
    split = run / "split.json"
    if meta.get("task") != "pretrain" or not split.is_file() or not test_keys:
        return None
    seen = {str(Path(k.split("#", 1)[0]).resolve()) + k[len(k.split("#", 1)[0]):]
            for keys in read_json(split).values() for k in keys}
    both = [k for k in test_keys if str(Path(k.split("#", 1)[0]).resolve()) + k[len(k.split("#", 1)[0]):] in seen]
    if not both:
        return None
    return (f"{len(both)} of the {len(test_keys)} test file(s) (e.g. {both[0]}) were in the data {run} was "
            f"pretrained on: its test score flatters the model; pretrain only on audio that is not in any test set")

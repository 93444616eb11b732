"""What `seehear tune` searches, per modality, in one visible dict.

Each entry is a setting (a RunConfig key, as `--set` takes it) and how to draw it:
    ("log", lo, hi)      a float on a log scale; with `relative=True` the bounds are factors of the recipe's value,
                         so one space suits recipes whose learning rates differ a hundredfold (SGD fastnet 0.375,
                         AdamW TC-ResNet 3e-3)
    ("float", lo, hi)    a float on a linear scale
    ("int", lo, hi)      an integer, both ends included
    ("choice", [...])    one of the values
`GRID` holds the points `--sampler grid` tries for each (a grid must be finite). "model" is special: its choices
name presets of model family and width (MODELS), since widths are spelled differently per family.
"""
from __future__ import annotations

import hashlib
import json

from seehear.config import RunConfig
from seehear.errors import ConfigError

# Model family and width, as (model.name, model.kwargs). kwargs not named keep the registry's defaults.
MODELS = {
    "image": {
        "fastnet": ("fastnet", {}),
        "fastnet-narrow": ("fastnet", {"widths": [16, 32, 64]}),
        "small_cnn": ("small_cnn", {"width": 32}),
        "small_cnn-narrow": ("small_cnn", {"width": 16}),
        "resnet8": ("resnet8", {"width": 16}),
    },
    "audio": {
        "tcresnet8": ("tcresnet8", {"width": 1.0}),
        "tcresnet8-wide": ("tcresnet8", {"width": 1.5}),
        "tcresnet14": ("tcresnet14", {"width": 1.0}),
    },
}

SPACE: dict[str, dict[str, tuple]] = {
    "image": {
        "train.lr": ("log", 0.1, 3.0, "relative"),
        "train.weight_decay": ("log", 0.1, 10.0, "relative"),
        "train.batch_size": ("choice", [32, 64, 128, 256]),
        "train.label_smoothing": ("float", 0.0, 0.3),
        "model": ("choice", list(MODELS["image"])),
        "augment.crop_pad": ("int", 0, 4),
        "augment.cutout": ("choice", [0, 4, 8]),
    },
    "audio": {
        "train.lr": ("log", 0.1, 3.0, "relative"),
        "train.weight_decay": ("log", 0.1, 10.0, "relative"),
        "train.batch_size": ("choice", [16, 32, 64]),
        "train.label_smoothing": ("float", 0.0, 0.3),
        "model": ("choice", list(MODELS["audio"])),
        "augment.noise_prob": ("float", 0.0, 0.8),
        "augment.time_shift": ("float", 0.0, 0.2),
        "augment.freq_masks": ("int", 0, 3),
        "augment.time_masks": ("int", 0, 3),
    },
}

GRID = {"log": (0.3, 1.0, 3.0), "float": 3, "int": 3}  # log: factors; float/int: evenly spaced points


def space_for(modality: str, space: dict | None = None) -> dict:
    s = SPACE.get(modality) if space is None else space
    if not s:
        raise ConfigError(f"no search space for modality {modality!r}; use image or audio data")
    for key, spec in s.items():
        if not isinstance(spec, tuple) or spec[0] not in ("log", "float", "int", "choice"):
            raise ConfigError(f"search space entry {key!r}: expected ('log'|'float'|'int'|'choice', ...)")
    return s


def fingerprint(space: dict) -> str:
    """Identifies a space, so that a study is not resumed with a different one."""
    return hashlib.sha1(json.dumps(space, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _base_value(base: RunConfig, key: str):
    node = base.to_dict()
    for part in key.split("."):
        node = node[part]
    return node


def suggest(trial, space: dict) -> dict:
    """Draw one point: the optuna parameter values (what the sampler and the importance plot see)."""
    params = {}
    for key, spec in space.items():
        kind = spec[0]
        if kind == "log":
            params[key] = trial.suggest_float(key, spec[1], spec[2], log=True)
        elif kind == "float":
            params[key] = trial.suggest_float(key, spec[1], spec[2])
        elif kind == "int":
            params[key] = trial.suggest_int(key, spec[1], spec[2])
        else:
            params[key] = trial.suggest_categorical(key, spec[1])
    return params


def settings(params: dict, space: dict, base: RunConfig, modality: str) -> dict:
    """The nested settings (as in a config YAML) that a point stands for, relative values made absolute."""
    out: dict = {}
    for key, value in params.items():
        spec = space.get(key, ("choice",))
        if key == "model":
            name, kwargs = MODELS[modality][value]
            out["model"] = {"name": name, "kwargs": dict(kwargs)}
            continue
        if spec[0] == "log" and len(spec) > 3 and spec[3] == "relative":
            value = float(_base_value(base, key)) * value
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def grid(space: dict) -> dict[str, list]:
    """Finite points per setting for optuna's GridSampler."""
    import numpy as np

    g = {}
    for key, spec in space.items():
        kind = spec[0]
        if kind == "log":
            lo, hi = spec[1], spec[2]
            g[key] = [v for v in GRID["log"] if lo <= v <= hi] if len(spec) > 3 else \
                [float(v) for v in np.geomspace(lo, hi, 3)]
        elif kind == "float":
            g[key] = [float(v) for v in np.linspace(spec[1], spec[2], GRID["float"])]
        elif kind == "int":
            g[key] = sorted({int(round(v)) for v in np.linspace(spec[1], spec[2], GRID["int"])})
        else:
            g[key] = list(spec[1])
    return g

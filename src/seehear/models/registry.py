"""The model registry: every backbone seehear can train, by name.

A model family lives in one file under models/vision or models/audio and registers its variants with
`@register_model`. A factory takes the number of classes and the input it will see and returns an nn.Module that
maps that input to logits [B, num_classes]:

    image models:  x [B, C, H, W] float (already normalised)
    audio models:  x [B, 1, F, T] float (log-mel or MFCC, F bands by T frames)

Audio models that see time as a sequence also provide `encode(x) -> [B, T', D]` (frame embeddings), so that later
tasks (CTC transcription, speaker embeddings) can put their own heads on the same encoders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from seehear.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    modality: str  # image | audio
    factory: Callable[..., nn.Module]
    description: str
    sequence: bool = False  # has encode(x) -> [B, T', D]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, modality: str, description: str = "", sequence: bool = False):
    """Decorator: `@register_model("resnet8", "image", "...")` above `def factory(num_classes, in_channels,
    input_size, **kwargs) -> nn.Module`."""
    if modality not in ("image", "audio"):
        raise ValueError(modality)

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name} registered twice")
        _REGISTRY[name] = ModelSpec(name, modality, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                                    sequence)
        return fn

    return deco


def _load_families() -> None:
    # Importing the family modules registers them; done lazily so that `seehear --help` stays fast.
    from seehear.models import audio, vision  # noqa: F401


def list_models(modality: str | None = None) -> list[ModelSpec]:
    _load_families()
    return [s for s in sorted(_REGISTRY.values(), key=lambda s: s.name) if modality in (None, s.modality)]


def get_spec(name: str) -> ModelSpec:
    _load_families()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; see `seehear models` for the list "
                          f"({', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, in_channels: int, input_size: tuple[int, int], **kwargs) -> nn.Module:
    """Build a registered backbone+classifier. input_size is (H, W) for images and (F, T) for audio features."""
    spec = get_spec(name)
    try:
        return spec.factory(num_classes=num_classes, in_channels=in_channels, input_size=tuple(input_size), **kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name}: bad model.kwargs ({e})") from None

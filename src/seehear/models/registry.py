"""The model registry: every backbone seehear can train, by name.

A model family lives in one file under models/vision or models/audio and registers its variants with
`@register_model`. A factory takes the number of classes and the input it will see and returns an nn.Module that
maps that input to logits [B, num_classes]:

    image models:  x [B, C, H, W] float (already normalised)
    audio models:  x [B, 1, F, T] float (log-mel or MFCC, F bands by T frames)
    frames models: x [B, T, C, H, W] float (image sequences, each frame normalised); input_size is (T, H, W)

Transcription models (task="transcribe", models/asr) map features and their lengths to per-frame unit logits:
`forward(x [B, 1, F, T], lengths [B]) -> (logits [B, T', V], out_lengths [B])`, V = CTC units incl. blank.

Audio models that see time as a sequence also provide `encode(x) -> [B, T', D]` (frame embeddings), so that later
tasks (CTC transcription, speaker embeddings) can put their own heads on the same encoders.

Every model accepts `pretrained=<local file>` (model.pretrained): factories that take the kwarg load it themselves
(timm models); for the others create_model loads the file after building, with `load_pretrained` (a new head when
the number of classes differs, the first conv adapted to another channel count). Nothing is ever downloaded.
"""
from __future__ import annotations

import inspect
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from seehear.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    modality: str  # image | audio
    factory: Callable[..., nn.Module]
    description: str
    sequence: bool = False  # has encode(x) -> [B, T', D]
    task: str = "classify"  # classify: logits [B, classes] | transcribe: (logits [B, T', V], lengths)
    defaults: tuple = ()  # (name, value) pairs: the family's tuned settings, under any model.kwargs the user sets


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, modality: str, description: str = "", sequence: bool = False,
                   task: str = "classify", defaults: dict | None = None):
    """Decorator: `@register_model("resnet8", "image", "...")` above `def factory(num_classes, in_channels,
    input_size, **kwargs) -> nn.Module`. `defaults` are the settings the family is tuned with (as timm's
    pretrained configs): applied to every build, under the model.kwargs of the run."""
    if modality not in ("image", "audio", "frames"):
        raise ValueError(modality)

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name} registered twice")
        _REGISTRY[name] = ModelSpec(name, modality, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                                    sequence, task, tuple(sorted((defaults or {}).items())))
        return fn

    return deco


def _load_families() -> None:
    # Importing the family modules registers them; done lazily so that `seehear --help` stays fast.
    from seehear.models import asr, audio, vision  # noqa: F401


def list_models(modality: str | None = None, task: str | None = None) -> list[ModelSpec]:
    _load_families()
    return [s for s in sorted(_REGISTRY.values(), key=lambda s: s.name)
            if modality in (None, s.modality) and task in (None, s.task)]


def get_spec(name: str) -> ModelSpec:
    _load_families()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; see `seehear models` for the list "
                          f"({', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, in_channels: int, input_size: tuple[int, int], **kwargs) -> nn.Module:
    """Build a registered backbone+classifier. input_size is (H, W) for images and (F, T) for audio features."""
    spec = get_spec(name)
    pretrained = None
    if "pretrained" in kwargs and "pretrained" not in inspect.signature(spec.factory).parameters:
        pretrained = kwargs.pop("pretrained")
    try:
        model = spec.factory(num_classes=num_classes, in_channels=in_channels, input_size=tuple(input_size), **kwargs)
    except TypeError as e:
        raise ConfigError(f"model {name}: bad model.kwargs ({e})") from None
    if pretrained:
        first = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
        load_pretrained(model, pretrained, first_conv=first, classifier="classifier", name=name)
    return model


# --- local pretrained weights ----------------------------------------------------------------------------------


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local .safetensors or torch checkpoint file; ConfigError if it cannot be read."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"pretrained weights file {p} does not exist; give a local .safetensors or .pth file "
                          f"(seehear never downloads weights)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p), device="cpu")
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, pickled code, wrong format ...
        why = "not a plain torch checkpoint of tensors" if isinstance(e, pickle.UnpicklingError) \
            else (str(e).splitlines() or [""])[0][:160]
        raise ConfigError(f"cannot read pretrained weights {p} ({type(e).__name__}: {why}); expected a "
                          f".safetensors file or a state_dict saved with torch.save") from None
    # Training checkpoints wrap the weights: {'state_dict': ...}, {'model': ...}, {'state_dict_ema': ...}
    for key in ("state_dict_ema", "model_ema", "state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"pretrained weights {p} do not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _strip_common_prefix(state: dict, own: dict) -> dict:
    """Accept weights saved inside a wrapper, e.g. a seehear Recognizer ('backbone.' keys beside 'frontend.')."""
    if any(k in own for k in state):
        return state
    best, best_hits = state, 0
    for prefix in {k.split(".", 1)[0] + "." for k in state if "." in k}:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        hits = sum(k in own for k in stripped)
        if hits > best_hits:
            best, best_hits = stripped, hits
    return best


def load_pretrained(model: nn.Module, path: str | Path, *, first_conv: str | None = None,
                    classifier: str | tuple[str, ...] = (), name: str = "model") -> nn.Module:
    """Load a local weights file into `model` for transfer learning. Weights under `classifier` whose shape
    differs (another number of classes) are skipped, leaving the fresh head; the `first_conv` weight is adapted to
    another input channel count (timm's adapt_input_conv); a ViT position table is resampled to the image size.
    Any other mismatch or missing weight is a ConfigError, never a silently half-loaded model."""
    state = read_weights(path)
    own = model.state_dict()
    state = _strip_common_prefix(state, own)
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    is_head = lambda k: any(k == c or k.startswith(c + ".") for c in classifier)  # noqa: E731
    out, bad = {}, []
    for k, v in state.items():
        if k not in own:
            continue
        target = own[k]
        if v.shape != target.shape:
            if is_head(k):
                continue  # another number of classes: keep the fresh head
            if k == f"{first_conv}.weight" and v.dim() == 4 and v.shape[0] == target.shape[0]:
                from timm.models import adapt_input_conv  # sum for grayscale, repeat + rescale otherwise

                v = adapt_input_conv(target.shape[1], v, base_chans=v.shape[1])
            elif k.endswith("pos_embed") and v.dim() == 3 and hasattr(model, "patch_embed"):
                from timm.layers import resample_abs_pos_embed

                prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
                v = resample_abs_pos_embed(v, list(model.patch_embed.grid_size), num_prefix_tokens=prefix)
            if v.shape != target.shape:
                bad.append(f"{k} {tuple(v.shape)} vs {tuple(target.shape)}")
                continue
        out[k] = v.to(target.dtype)
    wrong = {b.split(" ", 1)[0] for b in bad}
    missing = [k for k in own if k not in out and k not in wrong and not is_head(k)
               and not k.endswith("num_batches_tracked")]
    if bad or missing:
        detail = "; ".join(bad[:10] + [f"missing {k}" for k in missing[:10]])  # each named (up to 10)
        raise ConfigError(f"pretrained weights {path} do not fit {name}: {len(bad)} shape mismatch(es), "
                          f"{len(missing)} missing weight(s) ({detail}); were they saved from the same architecture?")
    model.load_state_dict(out, strict=False)
    return model

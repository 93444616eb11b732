"""Files that must survive a kill at any moment: written to a temporary file beside the target, flushed to disk,
then renamed over it (rename is atomic on POSIX), so a reader sees the old file or the new one, never half of one.

Weights are safetensors (no code runs on load). Resumable training state uses Lightning's checkpoint format,
written atomically by `AtomicCheckpointIO` and read back with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors.torch import load_file, save_file

from seehear.atomic import atomic_write, read_json, write_json, write_text  # noqa: F401  (re-exported)
from seehear.errors import RunError


def save_weights(state_dict: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None):
    # safetensors refuses shared storage and non-contiguous tensors: give it plain copies.
    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    return atomic_write(path, lambda p: save_file(tensors, p, metadata=metadata))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise RunError(f"{p} is missing: the run did not finish; resume it with `seehear train ... --resume`")
    try:
        return load_file(str(p))
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise RunError(f"{p} is not a readable safetensors file ({e})") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints, written atomically and loaded without unpickling arbitrary objects."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_write(path, lambda p: torch.save(checkpoint, p))

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except FileNotFoundError:
            raise RunError(f"checkpoint {path} is missing") from None
        except Exception as e:
            raise RunError(f"checkpoint {path} cannot be read safely ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}); start the run again without --resume") from None

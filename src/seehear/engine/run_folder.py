"""The run folder: the unit that evaluate, predict, export and serve consume.

meta.json is enough to rebuild the model and its input pipeline without the training data or the command.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

import seehear
from seehear.config import RunConfig
from seehear.engine.checkpoint import load_weights, read_json, save_weights, write_json
from seehear.errors import RunError
from seehear.models.recognizer import Recognizer, build_recognizer

FORMAT = 1  # bump when meta.json or the weights layout changes incompatibly


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "seehear": seehear.__version__}
    for pkg in ("torch", "torchaudio", "torchvision", "lightning", "timm", "numpy", "pillow", "soundfile"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def fingerprint(keys: list[str]) -> str:
    """Cheap identity of a data set: names and sizes of its files (content hashes would cost a full read)."""
    h = hashlib.blake2b(digest_size=12)
    for k in sorted(keys):
        path = k.split("#", 1)[0]
        size = os.path.getsize(path) if os.path.exists(path) else -1
        h.update(f"{k}\0{size}\n".encode())
    return h.hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_meta(run_dir: Path, meta: dict) -> None:
    meta = {"format": FORMAT, "seehear_version": seehear.__version__, **meta}
    write_json(run_dir / "meta.json", meta)


@dataclass
class LoadedRun:
    run_dir: Path
    model: Recognizer
    cfg: RunConfig
    meta: dict

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def modality(self) -> str:
        return self.model.modality


def save_model(run_dir: Path, model: Recognizer) -> None:
    save_weights(model.state_dict(), run_dir / "model.safetensors", metadata={"format": str(FORMAT)})


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist; train one with `seehear train DATA --out {run_dir}`")
    meta = read_json(run_dir / "meta.json")
    if not isinstance(meta, dict) or "labels" not in meta:
        raise RunError(f"{run_dir}/meta.json is not a seehear run description")
    if meta.get("format") != FORMAT:
        raise RunError(f"{run_dir} was written by seehear {meta.get('seehear_version', '?')} (run format "
                       f"{meta.get('format')}); this is seehear {seehear.__version__} (format {FORMAT}): "
                       f"retrain it, or use the seehear version that wrote it")
    if meta.get("status") != "done" and not (run_dir / "model.safetensors").is_file():
        raise RunError(f"{run_dir} holds an unfinished run; finish it with `seehear train ... --out {run_dir} "
                       f"--resume`")
    cfg = RunConfig.from_dict(meta["config"])
    model = build_recognizer(cfg, meta["labels"], meta["modality"], meta.get("norm_stats"))
    state = load_weights(run_dir / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RunError(f"{run_dir}/model.safetensors does not fit the model in meta.json "
                       f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    model.temperature.fill_(float((meta.get("calibration") or {}).get("temperature", 1.0)))  # seehear.trust
    model.to(device).eval()
    return LoadedRun(run_dir, model, cfg, meta)


def describe_command() -> str:
    return " ".join([Path(sys.argv[0]).name] + sys.argv[1:])

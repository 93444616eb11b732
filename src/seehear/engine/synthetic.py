"""A trained GAN run (task synthesize) as a source of training images: loading it, and topping up the rare classes of
a classification run's training split with its images (`seehear train DATA --synthetic RUN`, settings `synthetic`).

How many: class c gets max(0, ceil(ratio * the largest class's count) - count_c) generated images, so ratio 1
balances the classes, 0.5 lifts every class to half the largest (balanced data gets none for ratio <= 1), and a
ratio above 1 adds to every class. They are made once, before training, from the GAN's averaged (EMA) generator,
seeded by train.seed, and go into the training tensor only: validation and test stay real. Classes are matched by
name; the GAN's other classes are ignored and a data class the GAN lacks gets none (both noted in meta.json).

The model and its loader sit here, not in tasks/synthesize.py, so classification (tasks/classify.py) and the GAN
task both use them from below.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from seehear.config import RunConfig, SyntheticConfig
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import read_json
from seehear.engine.transfer import sha256
from seehear.errors import ConfigError, InputMismatchError, RunError
from seehear.models.vision.gan import GAN, check_size

GAN_KWARGS = ("z_dim", "width")
BATCH = 256  # images generated at a time


def build_gan(cfg: RunConfig, labels: list[str]) -> GAN:
    kw = {k: v for k, v in cfg.model.kwargs.items() if k in GAN_KWARGS}
    return GAN(labels, size=check_size(cfg.image.size), channels=cfg.image.channels, **kw)


def gan_meta(run) -> dict:
    """A finished GAN run's meta.json, or a one-line RunError saying what the folder is instead."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"GAN run {run} does not exist; train one with `seehear synthesize DATA --out {run}`")
    task = rf.run_task(run)
    if task != "synthesize":
        raise RunError(f"{run} is a {task} run, not a GAN run (task synthesize): train one with "
                       f"`seehear synthesize DATA --out RUN`")
    meta = read_json(run / "meta.json")
    if not (run / "model.safetensors").is_file():
        raise RunError(f"{run} holds an unfinished GAN run (no model.safetensors); finish it with "
                       f"`seehear synthesize DATA --out {run} --resume`")
    return meta


def load_gan(run) -> tuple[GAN, RunConfig, dict]:
    """(the GAN in eval mode, its settings, its meta.json)."""
    from safetensors.torch import load_file

    run = Path(run)
    meta = gan_meta(run)
    cfg = RunConfig.from_dict(meta["config"])
    model = build_gan(cfg, meta["labels"])
    missing, unexpected = model.load_state_dict(load_file(str(run / "model.safetensors")), strict=False)
    if missing or unexpected:
        raise RunError(f"{run}/model.safetensors does not fit the GAN in meta.json")
    return model.eval(), cfg, meta


def check_fits(syn: SyntheticConfig, cfg: RunConfig, modality: str) -> dict:
    """Before anything is decoded: the run is a GAN run whose images are this run's images. Returns its meta."""
    if modality != "image":
        raise InputMismatchError(f"synthetic.run={syn.run}: the GAN makes images, but this data is {modality}")
    meta = gan_meta(syn.run)
    made = meta.get("input") or {}
    if (made.get("size"), made.get("channels")) != (cfg.image.size, cfg.image.channels):
        raise InputMismatchError(
            f"synthetic.run={syn.run} makes {made.get('size')}x{made.get('size')} images with {made.get('channels')} "
            f"channel(s), this run reads {cfg.image.size}x{cfg.image.size} with {cfg.image.channels}: set "
            f"image.size={made.get('size')} and image.channels={made.get('channels')}, or train a GAN at this size")
    return meta


def top_up_counts(counts: list[int], ratio: float) -> list[int]:
    """Generated images per class: max(0, ceil(ratio * max(counts)) - count)."""
    target = math.ceil(ratio * max(counts, default=0) - 1e-9)
    return [max(0, target - int(c)) for c in counts]


def top_up(x: torch.Tensor, y: torch.Tensor, labels: list[str], syn: SyntheticConfig, seed: int
           ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The training tensor (uint8 [N, C, H, W], labels y) with the generated images appended, and what meta.json
    records about them."""
    run = Path(syn.run).expanduser().resolve()
    model, gcfg, _ = load_gan(run)
    if tuple(x.shape[1:]) != (gcfg.image.channels, gcfg.image.size, gcfg.image.size):
        raise InputMismatchError(f"synthetic.run={syn.run} makes images of shape {gcfg.image.channels}x"
                                 f"{gcfg.image.size}x{gcfg.image.size}, the training images are "
                                 f"{'x'.join(map(str, x.shape[1:]))}")
    gan_index = {l: i for i, l in enumerate(model.labels)}
    counts = torch.bincount(y, minlength=len(labels)).tolist()
    wanted = top_up_counts(counts, syn.ratio)
    g = torch.Generator().manual_seed(seed)
    xs, ys, added, notes = [x], [y], {}, []
    lacking = [l for l, n in zip(labels, wanted) if n and l not in gan_index]
    if lacking:
        notes.append(f"the GAN has no class {', '.join(lacking[:10])}: not topped up")
    extra = sorted(set(model.labels) - set(labels))
    if extra:
        notes.append(f"the GAN's classes {', '.join(extra[:10])} are not in the data: not used")
    for c, (label, n) in enumerate(zip(labels, wanted)):
        if not n or label not in gan_index:
            continue
        for i in range(0, n, BATCH):
            k = min(BATCH, n - i)
            xs.append(model.sample(torch.full((k,), gan_index[label], dtype=torch.long), g))
            ys.append(torch.full((k,), c, dtype=y.dtype))
        added[label] = n
    info = {"run": str(run), "sha256": sha256(run / "model.safetensors"), "ratio": syn.ratio, "seed": seed,
            "generator": "ema", "per_class": {l: added.get(l, 0) for l in labels}, "total": sum(added.values()),
            "notes": notes}
    return torch.cat(xs), torch.cat(ys), info


__all__ = ["GAN_KWARGS", "build_gan", "gan_meta", "load_gan", "check_fits", "top_up_counts", "top_up"]

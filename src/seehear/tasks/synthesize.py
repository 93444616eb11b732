"""Synthetic training data (task: synthesize): a class-conditional GAN (models/vision/gan.py, engine/gan.py) trained
on a folder of small labelled images over the shared lifecycle, then `generate` writes PNGs in a folder per class,
which `seehear train` reads like any other data (e.g. beside the real images for the rare classes).

    seehear synthesize DATA --out runs/gan --time-budget 30m
    seehear synthesize runs/gan --per-class 500 --out synthetic/
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seehear.atomic import atomic_write
from seehear.config import RunConfig
from seehear.data.cache import decode_all
from seehear.data.sources import load_source, require_trainable
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import read_json
from seehear.engine.loaders import Batches
from seehear.engine.trainer import fit_module
from seehear.errors import ConfigError, DataError, RunError
from seehear.models.vision.gan import GAN, check_size
from seehear.recipes import resolve
from seehear.tasks.base import Prepared, Task

RECIPE = "gan-small"
GAN_KWARGS = ("z_dim", "width")


def build_gan(cfg: RunConfig, labels: list[str]) -> GAN:
    kw = {k: v for k, v in cfg.model.kwargs.items() if k in GAN_KWARGS}
    return GAN(labels, size=check_size(cfg.image.size), channels=cfg.image.channels, **kw)


class Synthesize(Task):
    name = "synthesize"

    def load(self, data, label_pattern):
        source = load_source(data, label_pattern=label_pattern)
        if source.modality != "image":
            raise DataError(f"{source.root} holds {source.modality}: the GAN makes images only (a folder of image "
                            f"subfolders, one per class)")
        return require_trainable(source)

    def resolve(self, source, user, overrides):
        cfg = resolve(RECIPE, user, list(overrides))
        cfg.modality = "image"
        check_size(cfg.image.size)
        if cfg.train.grad_clip or cfg.train.ema or cfg.train.lookahead:
            raise ConfigError("the GAN trains with manual optimisation: train.grad_clip, train.ema and "
                              "train.lookahead do not apply (its generator average is model.kwargs.ema)")
        return cfg, RECIPE

    def prepare(self, source, cfg, out, resume, progress):
        labels = source.labels
        decoded = decode_all(source.records, cfg, "image", workers=cfg.data.workers, progress=progress)
        if not decoded.keep:
            raise DataError(f"no image in {source.root} could be decoded ({len(decoded.skipped)} files skipped)")
        idx = {l: i for i, l in enumerate(labels)}
        y = torch.tensor([idx[source.records[i].label] for i in decoded.keep], dtype=torch.long)
        model = build_gan(cfg, labels)
        meta = {"modality": "image", "labels": labels,
                "input": {"modality": "image", "channels": cfg.image.channels, "size": cfg.image.size},
                "data": {"counts": {"train": len(y)},
                         "train_per_class": dict(zip(labels, torch.bincount(y, minlength=len(labels)).tolist()))}}
        return Prepared(model, meta, decoded.skipped, {"x": decoded.x, "y": y})

    def fit(self, p, cfg, out, resume, progress):
        from seehear.engine.gan import GanModule

        x, y = p.state["x"], p.state["y"]
        loader = Batches(x, y, min(cfg.train.batch_size, len(y)), shuffle=True, seed=cfg.train.seed,
                         drop_last=True)
        module = GanModule(p.model, cfg, steps_per_epoch=len(loader))
        return fit_module(module, cfg, loader, None, out, resume=resume, progress=progress)

    def measure(self, p, cfg, out):
        """No held-out score (FID needs a pretrained network, not shipped offline): a PNG of samples per class for
        the report, and the class balance it was trained on."""
        write_sample_grid(p.model, out / "samples.png", cfg.train.seed)
        return "train", {"train": {"samples_png": "samples.png", "classes": len(p.model.labels)}}


def write_sample_grid(model: GAN, path: Path, seed: int = 0, per_class: int = 8) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(model.labels)
    y = torch.arange(k).repeat_interleave(per_class)
    imgs = model.sample(y, torch.Generator().manual_seed(seed)).permute(0, 2, 3, 1).numpy()
    fig = Figure(figsize=(per_class * 0.9, k * 0.95 + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(k, per_class, squeeze=False))
    for i, ax in enumerate(axes.flat):
        im = imgs[i]
        ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None, vmin=0,
                  vmax=255, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if i % per_class == 0:
            ax.set_ylabel(model.labels[i // per_class], fontsize=7, rotation=0, ha="right")
    fig.suptitle("Generated samples (EMA generator), one row per class", fontsize=9)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


# --- using a trained GAN -----------------------------------------------------------------------------------------

def load_gan(run) -> tuple[GAN, RunConfig, dict]:
    run = Path(run)
    if rf.run_task(run) != "synthesize":
        raise RunError(f"{run} is not a GAN run (task synthesize): train one with `seehear synthesize DATA --out RUN`")
    meta = read_json(run / "meta.json")
    if meta.get("status") != "done" and not (run / "model.safetensors").is_file():
        raise RunError(f"{run} holds an unfinished GAN run; finish it with `seehear synthesize DATA --out {run} "
                       f"--resume`")
    cfg = RunConfig.from_dict(meta["config"])
    model = build_gan(cfg, meta["labels"])
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(run / "model.safetensors")), strict=False)
    if missing or unexpected:
        raise RunError(f"{run}/model.safetensors does not fit the GAN in meta.json")
    return model.eval(), cfg, meta


def generate(run, out, *, per_class: int = 500, seed: int = 0, batch_size: int = 256) -> dict:
    """Write per_class PNGs (gan_00000.png ...) into OUT/<class>/ for every class the GAN learned."""
    from PIL import Image

    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, not {per_class}")
    model, cfg, _ = load_gan(run)
    out = Path(out)
    g = torch.Generator().manual_seed(seed)
    written = {}
    for c, label in enumerate(model.labels):
        folder = out / label
        for i in range(0, per_class, batch_size):
            n = min(batch_size, per_class - i)
            imgs = model.sample(torch.full((n,), c, dtype=torch.long), g).permute(0, 2, 3, 1).numpy()
            for j, im in enumerate(imgs):
                pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
                atomic_write(folder / f"gan_{i + j:05d}.png", lambda tmp, p=pil: p.save(tmp, format="PNG"))
        written[label] = per_class
    return {"out": str(out), "per_class": written, "size": cfg.image.size, "channels": cfg.image.channels}


TASK = Synthesize()
__all__ = ["TASK", "generate", "load_gan", "build_gan", "write_sample_grid"]

"""Self-supervised pretraining (task: pretrain; `seehear pretrain DIR --out runs/ssl`): SimCLR on images without
labels (engine/simclr.py), over the shared run lifecycle, so the result is an ordinary run folder that
`seehear train DATA --from runs/ssl` starts from.

The run's "classes" are the PROJECTION_DIM outputs of the projection (the backbone's last Linear); a labelled run
started from it gets a new head. If the folder happens to have class subfolders, their labels are used only by the
kNN monitor (metrics.json valid.knn_accuracy), never for training.
"""
from __future__ import annotations

import torch

from seehear.data.cache import decode_all
from seehear.data.sources import load_source
from seehear.engine.base_module import batch_size_for
from seehear.engine.loaders import Batches
from seehear.engine.simclr import SimCLRModule, knn_accuracy, representation
from seehear.engine.trainer import fit_module
from seehear.errors import ConfigError, DataError
from seehear.models.recognizer import build_recognizer, input_spec
from seehear.recipes import resolve
from seehear.tasks.base import Prepared, Task

PROJECTION_DIM = 64
MIN_IMAGES = 16  # fewer make no contrastive batch worth the name
METHODS = ("simclr",)


class Pretrain(Task):
    name = "pretrain"

    def load(self, data, label_pattern):
        source = load_source(data, label_pattern=label_pattern)
        if source.modality != "image":
            raise DataError(f"{data} holds {source.modality}: self-supervised pretraining is for images so far "
                            f"(SimCLR); give a folder of images")
        if len(source.records) < MIN_IMAGES:
            raise DataError(f"{data} has {len(source.records)} image(s); pretraining needs at least {MIN_IMAGES} "
                            f"(hundreds or more to be useful)")
        return source

    def resolve(self, source, user, overrides):
        cfg = resolve("image-ssl", user, list(overrides))
        cfg.modality = "image"
        return cfg, "image-ssl"

    def prepare(self, source, cfg, out, resume, progress):
        from seehear.features.image import channel_stats

        decoded = decode_all(source.records, cfg, "image", workers=cfg.data.workers, progress=progress)
        if len(decoded.keep) < MIN_IMAGES:
            raise DataError(f"only {len(decoded.keep)} image(s) of {source.root} could be decoded; pretraining "
                            f"needs at least {MIN_IMAGES}")
        x = decoded.x
        mean, std = channel_stats(x)
        norm = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
        labels = [f"z{i}" for i in range(PROJECTION_DIM)]
        net = build_recognizer(cfg, labels, "image", norm)
        monitor = _monitor(source, decoded, cfg.train.seed)
        meta = {"modality": "image", "labels": labels, "input": input_spec(cfg, "image"), "norm_stats": norm,
                "pretrain": {"method": "simclr", "projection_dim": PROJECTION_DIM,
                             "knn_monitor": monitor is not None},
                "data": {"counts": {"train": len(decoded.keep)}}}
        return Prepared(net, meta, decoded.skipped, {"x": x, "monitor": monitor})

    def fit(self, p, cfg, out, resume, progress):
        x = p.state["x"]
        bs = batch_size_for(len(x), cfg.train.batch_size, floor=16)
        loader = Batches(x, torch.zeros(len(x), dtype=torch.long), bs, shuffle=True, seed=cfg.train.seed,
                         drop_last=True)
        module = SimCLRModule(p.model, cfg, len(loader), monitor=p.state["monitor"])
        p.model.to(memory_format=torch.channels_last)
        info = fit_module(module, cfg, loader, None, out, resume=resume, progress=progress)
        p.model.eval()
        return {**info, "batch_size": bs, "knn_by_epoch": module.knn}

    def measure(self, p, cfg, out):
        mon = p.state["monitor"]
        if mon is None:
            return "valid", {}
        xtr, ytr, xva, yva = mon
        acc = knn_accuracy(representation(p.model, xtr), ytr, representation(p.model, xva), yva)
        return "valid", {"valid": {"knn_accuracy": round(acc, 4), "n": len(yva), "k": 5}}


def _monitor(source, decoded, seed: int):
    """(x_train, y_train, x_valid, y_valid) for the kNN monitor from the folder's own labels, if it has any."""
    labels = sorted({source.records[i].label for i in decoded.keep if source.records[i].label is not None})
    if len(labels) < 2:
        return None
    rows = [j for j, i in enumerate(decoded.keep) if source.records[i].label is not None]
    y = torch.tensor([labels.index(source.records[decoded.keep[j]].label) for j in rows])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    cut = max(1, len(rows) // 5)
    va, tr = order[:cut], order[cut:]
    x = decoded.x[rows]
    return x[tr], y[tr], x[va], y[va]


def pretrain(data, out, *, method: str = "simclr", epochs=None, time_budget=None, overrides=(), overwrite=False,
             progress=True):
    """Self-supervised pretraining of an image backbone on a folder of (unlabelled) images into run folder OUT."""
    from seehear.tasks.base import named_settings, train_task

    if method not in METHODS:
        raise ConfigError(f"pretrain method {method!r} is not built; use one of {', '.join(METHODS)}")
    return train_task(TASK, data, out, named=named_settings(epochs=epochs, time_budget=time_budget),
                      overrides=list(overrides), overwrite=overwrite, progress=progress)


TASK = Pretrain()

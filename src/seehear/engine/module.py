"""The training step for classification, as a LightningModule, and the batch loader that feeds it.

The loader hands out whole batches sliced from the decoded tensors (uint8 pixels / int16 samples); augmentation runs
on the batch, on the model's device, inside `training_step`, or in a background thread when the loader is wrapped in
`Prefetch` (audio on CPU, see engine/trainer.fit): no per-sample Python in the hot path.
"""
from __future__ import annotations

import dataclasses
import math
import time

import lightning.pytorch as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.models.recognizer import Recognizer


class Batches:
    """An epoch of (x, y) batches from in-memory tensors; reshuffled each epoch from (seed, epoch).

    alternate_flip: images are mirrored on alternate epochs (each image starts on a random side), so that every
    two epochs show each image both ways, which random flips only do on average (airbench's "alternating flip").
    Under torch.distributed each rank takes its own slice of the shuffled order (data parallel)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, sample_weights: torch.Tensor | None = None, alternate_flip: bool = False):
        self.x, self.y, self.bs, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.drop_last, self.weights, self.epoch = drop_last and len(y) > batch_size, sample_weights, 0
        self.first_side = None
        if alternate_flip and x.dim() == 4:
            g = torch.Generator().manual_seed(seed * 7_919 + 1)
            self.first_side = torch.rand(len(y), generator=g) < 0.5

    def _order(self) -> torch.Tensor:
        n = len(self.y)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:  # class-balanced sampling, with replacement
            return torch.multinomial(self.weights, n, replacement=True, generator=g)
        return torch.randperm(n, generator=g)

    def _shard(self, order):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            r, w = torch.distributed.get_rank(), torch.distributed.get_world_size()
            return order[r::w]
        return order

    def __len__(self) -> int:
        n = len(self._shard(torch.arange(len(self.y))))
        return n // self.bs if self.drop_last else math.ceil(n / self.bs)

    def __iter__(self):
        order = self._shard(self._order())
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            x = self.x[idx]
            if self.first_side is not None:
                flip = self.first_side[idx] ^ bool(self.epoch % 2)
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            yield x, self.y[idx]


class Prefetch:
    """Prepares the next `depth` batches in a background thread while the model trains on the current one: what
    DataLoader workers do, without processes (the data is already one in-memory tensor, and torch ops release the
    GIL). `transform(x, generator)` is the batch augmentation; its generator is seeded from (seed, epoch), so a
    run stays repeatable however the two threads interleave."""

    _END = object()

    def __init__(self, loader, transform, seed: int = 0, depth: int = 2):
        self.loader, self.transform, self.seed, self.depth, self.epoch = loader, transform, seed, depth, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        import queue
        import threading

        q: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work():
            # One thread for the worker's own ops: left at the default it starts an OpenMP team as large as the
            # model's, and on 2 cores the extra spinning threads slowed CIFAR's training kernels by a third.
            torch.set_num_threads(1)  # per thread: the training thread keeps its own setting
            try:
                for x, y in self.loader:
                    if not put((self.transform(x, g), y)):
                        return
            except BaseException as e:  # handed to the training thread, which raises it
                put(e)
            put(self._END)

        worker = threading.Thread(target=work, name="seehear-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:  # also when training stops mid-epoch (time budget, Ctrl-C)
            stop.set()
            worker.join(timeout=5)


class ClassifyModule(pl.LightningModule):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int,
                 class_weights: torch.Tensor | None = None):
        super().__init__()
        self.model, self.cfg, self.steps_per_epoch = model, cfg, max(1, steps_per_epoch)
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.tensor([]))
        self.train_seconds = 0.0  # training time so far, resumed from checkpoints; drives the time budget
        self.data_seconds = 0.0  # of which: waiting for the next batch and augmenting it (the data-wait share)
        self.augment_in_loader = False  # True when a Prefetch loader augments batches in its thread
        self._t = None
        # airbench's alternating flip is done by the loader (Batches), so the random flip is off here.
        self._augment_cfg = dataclasses.replace(cfg.augment, flip=False) if cfg.augment.alternate_flip \
            else cfg.augment

    # --- input ------------------------------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        # Augmentation is data preparation, not model compute: always in float32, outside bf16 autocast.
        if train and self.augment_in_loader:
            return x  # the loader's thread did it (see loader_augment)
        t = time.perf_counter()
        with torch.autocast(x.device.type, enabled=False):
            out = self._augment(x, train)
        if train:
            self.data_seconds += time.perf_counter() - t
        return out

    def loader_augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training-time preparation of a batch, for a loader that runs it in its own thread (Prefetch)."""
        return self._augment(x, True, generator)

    def _augment(self, x: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        from seehear.features.augment import augment_images, augment_waves

        if self.model.modality == "audio":
            x = x.float() / 32767.0 if x.dtype == torch.int16 else x.float()
            return augment_waves(x, self._augment_cfg, self.cfg.audio.sample_rate, generator) if train else x
        if train:
            x = augment_images(x, self._augment_cfg, generator)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def forward(self, x):
        return self.model(self._prepare(x, train=False))

    def _loss(self, logits, y):
        w = self.class_weights if self.class_weights.numel() else None
        return F.cross_entropy(logits.float(), y, weight=w, label_smoothing=self.cfg.train.label_smoothing)

    # --- steps ------------------------------------------------------------------------------------------------
    def training_step(self, batch, _):
        if self._t is None:
            self._t = time.perf_counter()
        x, y = batch
        logits = self.model(self._prepare(x, train=True))
        loss = self._loss(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train_acc", acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_batch_start(self, *args):
        if self._t is not None:  # from the end of the last step to here: the loader made the next batch
            self.data_seconds += time.perf_counter() - self._t

    def on_train_batch_end(self, *args):
        now = time.perf_counter()
        self.train_seconds += now - (self._t or now)
        self._t = now
        budget = self.cfg.train.time_budget
        if budget and self.train_seconds >= budget:
            self.trainer.should_stop = True

    def on_train_epoch_start(self):
        self._t = None
        hook = getattr(getattr(self.model, "backbone", None), "on_progress", None)
        if hook is not None:  # a model that changes what trains as training goes (fastnet's whitening bias)
            hook(self.progress())

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.model(self._prepare(x, train=False))
        self.log("val_loss", self._loss(logits, y), prog_bar=True, batch_size=len(y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, batch_size=len(y))

    # --- optimisation -----------------------------------------------------------------------------------------
    def progress(self) -> float:
        """Fraction of training done: by steps, or by time when a time budget ends training sooner."""
        t = self.cfg.train
        p = self.global_step / (self.steps_per_epoch * max(1, t.epochs))
        if t.time_budget:
            p = max(p, self.train_seconds / t.time_budget)
        return min(1.0, p)

    def lr_factor(self, _step: int) -> float:
        t, p = self.cfg.train, self.progress()
        warm = min(0.3, t.warmup_epochs / max(1, t.epochs))
        if t.schedule == "onecycle":  # linear up for 25%, then linear down to zero (airbench style)
            return p / 0.25 if p < 0.25 else max(0.0, (1 - p) / 0.75)
        if t.schedule == "linear":  # from the peak straight down (airbench94_muon: Muon needs no warm-up)
            return max(0.0, 1 - p)
        if p < warm:
            return max(p / warm, 1e-3)
        if t.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (p - warm) / max(1e-8, 1 - warm)))
        return 1.0

    def configure_optimizers(self):
        t = self.cfg.train
        norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
        in_norm = {id(p) for m in self.model.modules() if isinstance(m, norm_types) for p in m.parameters(False)}
        decay, norms, biases, filters = [], [], [], []
        for p in self.model.parameters():
            if not p.requires_grad:
                continue
            kind = norms if id(p) in in_norm else biases if p.ndim <= 1 else \
                filters if p.ndim >= 3 and t.optimizer == "muon" else decay  # Muon: conv filters
            kind.append(p)
        # Norm layers get norm_lr_scale (airbench: 64; other biases, like its whitening bias, keep the base lr).
        # Norms and biases are not decayed unless decay_norms: then by the weights' amount per step (airbench).
        norm_decay = t.weight_decay / t.norm_lr_scale if t.decay_norms else 0.0
        groups = [{"params": decay, "weight_decay": t.weight_decay},
                  {"params": norms, "weight_decay": norm_decay, "lr": t.lr * t.norm_lr_scale},
                  {"params": biases, "weight_decay": t.weight_decay if t.decay_norms else 0.0}]
        if t.optimizer == "muon":
            groups.append({"params": filters, "lr": t.muon_lr, "momentum": t.muon_momentum, "muon": True})
        groups = [g for g in groups if g["params"]]
        if t.optimizer == "muon":
            from seehear.engine.muon import Muon

            opt = Muon(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov)
        elif t.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov and t.momentum > 0)
        elif t.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=t.lr)
        elif t.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=t.lr)
        elif t.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(groups, lr=t.lr, momentum=t.momentum)
        else:
            from seehear.errors import ConfigError

            raise ConfigError(f"train.optimizer {t.optimizer!r} unknown; use sgd, adam, adamw, rmsprop or muon")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- resume -----------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["seehear_train_seconds"] = self.train_seconds
        checkpoint["seehear_data_seconds"] = self.data_seconds

    def on_load_checkpoint(self, checkpoint):
        self.train_seconds = float(checkpoint.get("seehear_train_seconds", 0.0))
        self.data_seconds = float(checkpoint.get("seehear_data_seconds", 0.0))

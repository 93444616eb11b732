"""What every task's LightningModule shares: optimiser groups, the learning-rate schedule, the time budget, the
data-wait accounting and resume of both clocks. Tasks subclass it with their own steps and loss only
(engine/classify.py, engine/ctc.py, engine/speaker.py).

Subclasses call `self.start_step()` first in `training_step` and put batch preparation inside
`with self.data_time():`, so that the share of time spent making batches is measured the same way everywhere.
"""
from __future__ import annotations

import collections
import contextlib
import math
import time

import lightning.pytorch as pl
import torch
import torch.nn as nn

from seehear.config import RunConfig
from seehear.errors import ConfigError


class TrainModule(pl.LightningModule):
    def __init__(self, model: nn.Module, cfg: RunConfig, steps_per_epoch: int):
        super().__init__()
        self.model, self.cfg, self.steps_per_epoch = model, cfg, max(1, steps_per_epoch)
        w = cfg.train.warmup_fraction
        if w is not None and not 0.0 <= w < 1.0:
            raise ConfigError(f"train.warmup_fraction must be in [0, 1), got {w}")
        self.train_seconds = 0.0  # training time so far, resumed from checkpoints; drives the time budget
        self.data_seconds = 0.0  # of which: waiting for the next batch and preparing it (the data-wait share)
        self._t = None
        self._recent: collections.deque = collections.deque(maxlen=66)  # durations of the latest steps

    # --- clocks -----------------------------------------------------------------------------------------------
    def start_step(self) -> None:
        if self._t is None:
            self._t = time.perf_counter()

    @contextlib.contextmanager
    def data_time(self):
        """Batch preparation (augmentation): counted as data wait, run in float32 outside any autocast."""
        t = time.perf_counter()
        try:
            with torch.autocast("cuda" if self.device.type == "cuda" else "cpu", enabled=False):
                yield
        finally:
            self.data_seconds += time.perf_counter() - t

    @contextlib.contextmanager
    def off_clock(self):
        """Work done inside between steps (a benchmark's evaluation in a callback) is not counted as training time,
        so it neither spends the time budget nor shows in the data-wait share."""
        t = time.perf_counter()
        try:
            yield
        finally:
            if self._t is not None:
                self._t += time.perf_counter() - t

    def on_train_batch_start(self, *args):
        if self._t is not None:  # from the end of the last step to here: the loader made the next batch
            self.data_seconds += time.perf_counter() - self._t

    def on_train_batch_end(self, *args):
        now = time.perf_counter()
        step = now - (self._t or now)
        self.train_seconds += step
        self._t = now
        self._recent.append(step)
        budget = self.cfg.train.time_budget
        # A budget is a limit, not a target: stop when the next step, as long as the longest of the recent ones,
        # would overrun it (a length-bucketed speech batch can take several times a typical one). The first steps
        # of a fit (kernel set-up, allocations) are no guide to the next one and are left out.
        ahead = max(list(self._recent)[2:] or [0.0])
        stop = bool(budget and self.train_seconds + ahead > budget)
        if budget and self.trainer.world_size > 1:  # data parallel: all ranks stop at the same step, or they hang
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self.trainer.should_stop = True

    def on_train_epoch_end(self):
        # the training clock beside each epoch's metrics in logs/metrics.csv: learning curves against time
        self.log("train_seconds", self.train_seconds, on_step=False, on_epoch=True, rank_zero_only=True)

    def on_train_start(self):
        # Under data parallelism each rank sees 1/w of the batches; the schedule runs on the steps it will take.
        n = self.trainer.num_training_batches
        if isinstance(n, int) and n > 0:
            self.steps_per_epoch = n

    def on_train_epoch_start(self):
        self._t = None
        if self.cfg.train.freeze_epochs > 0:
            self.freeze_backbone(self.current_epoch < self.cfg.train.freeze_epochs)
        hook = getattr(getattr(self.model, "backbone", None), "on_progress", None)
        if hook is not None:  # a model that changes what trains as training goes (fastnet's whitening bias)
            hook(self.progress())

    def freeze_backbone(self, frozen: bool) -> None:
        """Transfer: only the head learns while `frozen` (train.freeze_epochs), then everything that was trainable
        at the start does again (what a model froze itself, e.g. fastnet's whitening filters, stays frozen).
        Frozen parameters get no gradient, so the optimiser skips them (momentum and decay included)."""
        from seehear.engine.transfer import head_parameters

        if not hasattr(self, "_thawed"):
            head = head_parameters(getattr(self.model, "backbone", self.model))
            self._thawed = [p for p in self.model.parameters() if p.requires_grad and id(p) not in head]
        for p in self._thawed:
            p.requires_grad_(not frozen)

    # --- schedule ---------------------------------------------------------------------------------------------
    def progress(self) -> float:
        """Fraction of training done: by steps, or by time when a time budget ends training sooner."""
        t = self.cfg.train
        p = self.global_step / (self.steps_per_epoch * max(1, t.epochs))
        if t.time_budget:
            p = max(p, self.train_seconds / t.time_budget)
        return min(1.0, p)

    def lr_factor(self, _step: int) -> float:
        """The learning rate's multiplier now (schedule_factor at this run's progress)."""
        return schedule_factor(self.cfg.train, self.progress())

    def configure_optimizers(self):
        t = self.cfg.train
        norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
        trained = self.trained()
        in_norm = {id(p) for m in trained.modules() if isinstance(m, norm_types) for p in m.parameters(False)}
        decay, norms, biases, filters = [], [], [], []
        for p in trained.parameters():
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
        if t.backbone_lr_scale != 1.0:  # transfer: the backbone learns slower than the fresh head
            groups = self.split_head(groups, t.backbone_lr_scale)
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
        else:  # config.py checks the name when the config is read; this guards direct construction
            raise ConfigError(f"train.optimizer {t.optimizer!r} unknown; use sgd, adam, adamw, rmsprop or muon")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def trained(self) -> nn.Module:
        """What the optimiser trains: the model, and in a module with heads of its own beside it (BYOL's predictor,
        engine/ema_ssl.py) those too; an EMA teacher is left out (it follows the model, never a gradient)."""
        return self.model

    def split_head(self, groups: list[dict], scale: float) -> list[dict]:
        """Each group twice: its head parameters at the group's lr, the rest at lr * scale."""
        from seehear.engine.transfer import head_parameters

        head = head_parameters(getattr(self.model, "backbone", self.model))
        out = []
        for g in groups:
            lr = g.get("lr", self.cfg.train.lr)
            out.append({**g, "params": [p for p in g["params"] if id(p) in head], "lr": lr})
            out.append({**g, "params": [p for p in g["params"] if id(p) not in head], "lr": lr * scale})
        return out

    # --- resume -----------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["seehear_train_seconds"] = self.train_seconds
        checkpoint["seehear_data_seconds"] = self.data_seconds

    def on_load_checkpoint(self, checkpoint):
        self.train_seconds = float(checkpoint.get("seehear_train_seconds", 0.0))
        self.data_seconds = float(checkpoint.get("seehear_data_seconds", 0.0))


def schedule_factor(t, p: float, epochs: float | None = None) -> float:
    """The learning-rate multiplier of the train settings `t` at progress p in [0, 1] (the share of training done);
    `epochs` (default t.epochs) is what warmup_epochs is a share of. train.warmup_fraction, when set, is the share of
    training the linear warm-up takes under every schedule (then linear down for onecycle and linear, cosine for
    cosine). A pure function: federated rounds evaluate it at their own progress (scale/fed_server.py)."""
    own = t.warmup_fraction
    if t.schedule in ("onecycle", "linear"):
        # onecycle: linear up for 25%, then linear down to zero (airbench style); linear: from the peak straight
        # down (airbench94_muon: Muon needs no warm-up)
        up = own if own is not None else (0.25 if t.schedule == "onecycle" else 0.0)
        if p < up:
            return p / up
        return max(0.0, (1 - p) / max(1e-8, 1 - up))
    warm = own if own is not None else min(0.3, t.warmup_epochs / max(1, t.epochs if epochs is None else epochs))
    if p < warm:
        return max(p / warm, 1e-3)
    if t.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (p - warm) / max(1e-8, 1 - warm)))
    return 1.0


def batch_size_for(n: int, batch_size: int, floor: int = 8) -> int:
    """The batch size for n training examples: small data sets still get several optimiser steps per epoch (the
    batch shrinks to at most n/8, but not below `floor`)."""
    return max(1, min(batch_size, max(floor, math.ceil(n / 8))))

"""The training step for classification (a label per clip): cross-entropy (or focal / logit-adjusted loss, see
engine/imbalance.py) with label smoothing, optional class weights (deferred with train.drw), mixup and CutMix, on
batches augmented on the model's device or in the loader's thread (`Prefetch`).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.data.decode import pcm_to_float
from seehear.engine.adversarial import fgsm_rs_batch
from seehear.engine.base_module import TrainModule
from seehear.engine.imbalance import classification_loss, drw_active, log_prior
from seehear.features.augment import cutmix, mixup
from seehear.models.recognizer import Recognizer


class ClassifyModule(TrainModule):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int,
                 class_weights: torch.Tensor | None = None, class_counts: torch.Tensor | None = None):
        super().__init__(model, cfg, steps_per_epoch)
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.tensor([]))
        counts = class_counts if class_counts is not None else torch.ones(len(model.labels))
        self.register_buffer("log_prior", log_prior(counts), persistent=False)
        self.augment_in_loader = False  # True when a Prefetch loader augments batches in its thread
        # airbench's alternating flip is done by the loader (Batches), so the random flip is off here.
        self._augment_cfg = dataclasses.replace(cfg.augment, flip=False) if cfg.augment.alternate_flip \
            else cfg.augment
        self._mix = torch.Generator().manual_seed(cfg.train.seed * 31 + 7)

    # --- input ------------------------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.augment_in_loader:
            return x  # the loader's thread did it (see loader_augment)
        if not train:
            return self.augment(x, False)
        with self.data_time():
            return self.augment(x, True)

    def loader_augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training-time preparation of a batch, for a loader that runs it in its own thread (Prefetch)."""
        return self.augment(x, True, generator)

    def augment(self, x: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        from seehear.features.augment import augment_images, augment_sequences, augment_waves

        if self.model.modality == "frames":  # one flip / translation per sequence, the same for all its frames
            return augment_sequences(x, self._augment_cfg, generator) if train else x
        if self.model.modality == "audio":
            x = pcm_to_float(x)
            return augment_waves(x, self._augment_cfg, self.cfg.audio.sample_rate, generator) if train else x
        if train:
            x = augment_images(x, self._augment_cfg, generator)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def forward(self, x):
        return self.model(self.prepare(x, train=False))

    def loss(self, logits, y, train: bool = False):
        t = self.cfg.train
        w = self.class_weights if self.class_weights.numel() else None
        if w is not None and train and not drw_active(self.progress(), t.drw):
            w = None  # deferred re-weighting: plain loss until train.drw of training is done
        return classification_loss(logits, y, kind=t.loss, weight=w, smoothing=t.label_smoothing,
                                   gamma=t.focal_gamma, log_prior_=self.log_prior, tau=t.logit_tau)

    def mix(self, x, y):
        """Mixup or CutMix on the batch (one of them at random per batch when both are on): (x, soft targets), or
        (x, None) when neither is on."""
        a = self.cfg.augment
        if len(y) < 2 or (a.mixup <= 0 and a.cutmix <= 0):
            return x, None
        onehot = F.one_hot(y, len(self.model.labels)).float()
        use_cutmix = a.cutmix > 0 and (a.mixup <= 0 or bool(torch.rand(1, generator=self._mix) < 0.5))
        if use_cutmix and x.dim() == 4:
            return cutmix(x, onehot, a.cutmix, self._mix)
        if a.mixup > 0:  # audio batches ([B, S]) get mixup only
            return mixup(x, onehot, a.mixup, self._mix)
        return x, None

    # --- steps ------------------------------------------------------------------------------------------------
    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        x = self.prepare(x, train=True)
        t = self.cfg.train
        if t.adversarial != "none":  # train on the batch's FGSM-RS / N-FGSM perturbation (engine/adversarial.py)
            x = fgsm_rs_batch(self.model, x, y, eps_pixels=t.adversarial_eps, snr_db=t.adversarial_snr_db,
                              generator=self._mix, method=t.adversarial)
        x, target = self.mix(x, y)  # mixup / CutMix: trained on the mixed labels
        logits = self.model(x)
        loss = self.loss(logits, y if target is None else target, train=True)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train_acc", acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.model(self.prepare(x, train=False))
        # sync_dist: under data parallelism each rank validates its shard; the logged value is over all of them
        self.log("val_loss", self.loss(logits, y), prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, batch_size=len(y),
                 sync_dist=True)

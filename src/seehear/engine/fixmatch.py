"""Semi-supervised classification (`seehear train DATA --unlabelled MORE_DIR`), FixMatch-style (Sohn et al. 2020).

Each step takes the labelled batch as ClassifyModule does, plus MU times as many unlabelled examples. The model's
prediction on a weakly augmented view of each (the training augmentation: flip and shift, or for audio the usual
wave augmentation) is its pseudo-label where its confidence reaches `train.fixmatch_threshold`; the model then
learns that label from a strongly augmented view of the same example (images: twice the shift, cutout of half the
side, brightness and contrast jitter; audio: more noise, shift and gain), weighted by `train.unlabelled_weight`.
Mixup and label smoothing are not applied to the labelled part here: smoothing caps the confidence a model can
reach (0.92 for 5 classes at 0.1), so a 0.95 threshold would never pass. Pseudo-labels come from `model.logits`
(before the run's temperature, which is fitted after training).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.data.decode import pcm_to_float
from seehear.engine.classify import ClassifyModule
from seehear.features.augment import augment_images, augment_waves, cutout
from seehear.models.recognizer import Recognizer

MU = 2  # unlabelled examples per labelled one in a step (FixMatch uses 7 on a GPU; on a CPU each one costs)


def strong_config(cfg: RunConfig, modality: str):
    """The stronger settings of the same batch augmentation the run trains with."""
    a = cfg.augment
    if modality == "image":
        return dataclasses.replace(a, flip=True, crop_pad=max(2 * int(a.crop_pad or 0), cfg.image.size // 8),
                                   cutout=0)  # cutout applied separately (half the side), see strong_images
    return dataclasses.replace(a, noise_snr_db=[0.0, 20.0], noise_prob=1.0, time_shift=2 * a.time_shift,
                               gain_db=max(a.gain_db, 10.0))


def strong_images(x: torch.Tensor, cfg, size: int, generator: torch.Generator | None) -> torch.Tensor:
    x = augment_images(x, cfg, generator)
    b = len(x)
    xf = x.float()
    mean = xf.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 0.6 + 0.8 * torch.rand(b, 1, 1, 1, generator=generator).to(x.device)
    bright = (torch.rand(b, 1, 1, 1, generator=generator).to(x.device) - 0.5) * 0.4 * 255
    xf = ((xf - mean) * contrast + mean + bright).clamp(0, 255)
    x = xf.round().to(x.dtype) if x.dtype == torch.uint8 else xf
    return cutout(x, max(1, size // 2), generator)


@torch.no_grad()
def pseudo_labels(model: Recognizer, x: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, confident mask) the model gives un-augmented raw inputs: what FixMatch would train on."""
    from seehear.engine.trainer import predict_probs

    probs = predict_probs(model, x, precision="32")
    conf, labels = probs.max(1)
    return labels, conf >= threshold


class FixMatchModule(ClassifyModule):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int, unlabelled: torch.Tensor,
                 class_weights: torch.Tensor | None = None, class_counts: torch.Tensor | None = None):
        super().__init__(model, cfg, steps_per_epoch, class_weights, class_counts=class_counts)
        self.unlabelled = unlabelled  # raw uint8 / int16, kept on the CPU; batches move to the model's device
        self._weak_cfg = dataclasses.replace(self._augment_cfg, flip=cfg.augment.flip)
        self._strong_cfg = strong_config(cfg, model.modality)
        self._ugen = torch.Generator().manual_seed(cfg.train.seed * 13 + 5)
        self.seen = 0  # unlabelled examples looked at, and of those, given a pseudo-label
        self.kept = 0

    def loss(self, logits, y):
        w = self.class_weights if self.class_weights.numel() else None
        return F.cross_entropy(logits.float(), y, weight=w)

    def views(self, xu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model.modality == "audio":
            w = pcm_to_float(xu)
            sr = self.cfg.audio.sample_rate
            return augment_waves(w, self._weak_cfg, sr, self._ugen), augment_waves(w, self._strong_cfg, sr, self._ugen)
        weak = augment_images(xu, self._weak_cfg, self._ugen)
        strong = strong_images(xu, self._strong_cfg, self.cfg.image.size, self._ugen)
        cl = torch.channels_last
        return weak.contiguous(memory_format=cl), strong.contiguous(memory_format=cl)

    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        x = self.prepare(x, train=True)
        with self.data_time():
            idx = torch.randint(len(self.unlabelled), (MU * len(y),), generator=self._ugen)
            weak, strong = self.views(self.unlabelled[idx].to(self.device))
        logits = self.model.logits(x)
        loss = self.loss(logits, y)
        with torch.no_grad():
            conf, pseudo = torch.softmax(self.model.logits(weak).float(), dim=1).max(1)
        mask = (conf >= self.cfg.train.fixmatch_threshold).float()
        per = F.cross_entropy(self.model.logits(strong).float(), pseudo, reduction="none")
        unsup = (per * mask).mean()
        self.seen += len(mask)
        self.kept += int(mask.sum())
        total = loss + self.cfg.train.unlabelled_weight * unsup
        n = len(y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=n)
        self.log("train_pseudo", mask.mean(), prog_bar=True, on_step=False, on_epoch=True, batch_size=len(mask))
        return total

    def summary(self) -> dict:
        return {"unlabelled": len(self.unlabelled), "threshold": self.cfg.train.fixmatch_threshold,
                "weight": self.cfg.train.unlabelled_weight, "per_labelled": MU, "looked_at": self.seen,
                "pseudo_labelled_share": round(self.kept / self.seen, 4) if self.seen else None}

"""Episodic (prototypical-network) training of a classifier's embedding (`train.episodic=true`; Snell et al. 2017).

Each step is one episode (engine/episodes.py): the support and the queries go through the model in one batch,
the embedding is the input of the backbone's last Linear (`models.embedding`, the one few-shot prototypes and the
embedding maps use), a class's prototype is the mean of its support embeddings, and the loss is cross-entropy over
the queries' negative squared Euclidean distances to the prototypes (or 10 x cosine, train.episode_metric). An
embedding trained to make prototypes from few examples work is what `fewshot enroll` and `evaluate_fewshot` use.

The squared distance is divided by the embedding's dimension (a mean over dimensions, not Snell's sum): fastnet's
256 post-ReLU features summed gave a first loss of 69 under the image recipe's SGD at lr 0.375, then a validation
loss of 7e9 and an embedding collapsed to a constant (loss log 5) within 3 epochs on a CIFAR-10 smoke run.

The classifier head learns at the same time, by cross-entropy on every example of the episode weighted by
train.episode_head_weight, so the run stays an ordinary classification run: predict, evaluate, export and serve
use the head as for any run. The default weight is 1: on generated digits (0-4 trained, 6 epochs, 5-way 5-shot
on 5-9) weights 0, 0.1, 0.5 and 1 gave the same few-shot accuracy within its interval (0.718, 0.708, 0.698, 0.717
± 0.007) while the head's own accuracy rose with the weight (0.20, 0.70, 0.72, 0.75). With weight 0 the head
stays untrained and only prototypes (`fewshot enroll`) give sensible predictions.

Validation is episodic too: support from the training split, queries from the validation split, the same seeded
episodes every epoch; val_acc is their mean accuracy. Mixup, CutMix, adversarial batches, class weights and the
samplers do not apply here (an episode chooses its own classes).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.engine.classify import ClassifyModule
from seehear.models.embedding import embed_and_logits, last_linear
from seehear.models.recognizer import Recognizer

COSINE_SCALE = 10.0  # episode_metric=cosine: logits = 10 x cosine (as the few-shot prototypes' probabilities)


def prototypes(support: torch.Tensor, support_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([ways, D] mean embedding per class, [ways] the classes, sorted)."""
    classes = support_y.unique()
    return torch.stack([support[support_y == c].mean(0) for c in classes]), classes


def prototype_logits(query: torch.Tensor, protos: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """[Q, ways]: negative squared Euclidean distance to each prototype over the dimension, or COSINE_SCALE x
    cosine."""
    if metric == "cosine":
        return COSINE_SCALE * F.normalize(query, dim=1) @ F.normalize(protos, dim=1).T
    return -torch.cdist(query, protos).pow(2) / query.shape[1]


def prototypical_loss(support, support_y, query, query_y, metric: str = "euclidean"):
    """(cross-entropy of the queries over the prototypes, accuracy) for one episode."""
    protos, classes = prototypes(support.float(), support_y)
    logits = prototype_logits(query.float(), protos, metric)
    target = (query_y[:, None] == classes[None]).float().argmax(1)
    return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().mean()


class EpisodicModule(ClassifyModule):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int):
        super().__init__(model, cfg, steps_per_epoch)
        # episodes are not Batches, so there is no alternating flip: random flips instead, when flips are on
        self._augment_cfg = dataclasses.replace(cfg.augment, flip=cfg.augment.flip)
        self._head = None
        self._head_found = False

    def episode(self, x, y, train: bool):
        """(prototypical loss, its accuracy, logits) of one episode batch: support first, then queries."""
        t = self.cfg.train
        f = self.model.features(self.prepare(x, train=train))
        if not self._head_found:
            self._head, self._head_found = last_linear(self.model.backbone, f), True
        emb, logits = embed_and_logits(self.model.backbone, f, self._head)
        n = len(y.unique()) * t.episode_shots
        loss, acc = prototypical_loss(emb[:n], y[:n], emb[n:], y[n:], t.episode_metric)
        return loss, acc, logits

    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        loss, acc, logits = self.episode(x, y, train=True)
        w = self.cfg.train.episode_head_weight
        total = loss + w * self.loss(logits, y, train=True) if w > 0 else loss
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train_acc", acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        return total

    def validation_step(self, batch, _):
        x, y = batch
        loss, acc, _ = self.episode(x, y, train=False)
        self.log("val_loss", loss, prog_bar=True, batch_size=1, sync_dist=True)
        self.log("val_acc", acc, prog_bar=True, batch_size=1, sync_dist=True)

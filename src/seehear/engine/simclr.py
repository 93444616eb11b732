"""Self-supervised pretraining step for images, SimCLR (Chen et al. 2020): two strongly augmented views of each
image, embedded by the backbone and a projection head, pulled together against every other image in the batch by the
NT-Xent loss. The head is the backbone's last Linear followed, with `pretrain.projector` mlp (the default), by
BatchNorm, ReLU and a second Linear: SimCLR's nonlinear head, which lets the features below it keep what the loss
would otherwise throw away (the paper, Fig. 8: about 3 points of linear accuracy over a linear head, over 10 over
none). The extra layers live in this module (so in the checkpoint, for resume), not in the run's model. The backbone
then starts a labelled run with `train --from`.

The kNN monitor (Wu et al. 2018; lightly's benchmark): where the folder happens to have class subfolders, those
labels, never used for training, score each epoch's embeddings by 5-nearest-neighbour cosine vote (train → valid).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.engine.base_module import TrainModule
from seehear.engine.fixmatch import strong_config, strong_images
from seehear.models.recognizer import Recognizer

TEMPERATURE = 0.5  # SimCLR's NT-Xent temperature for small batches


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """NT-Xent: for each of 2N embeddings, the other view of the same image is the positive among 2N - 1."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


@torch.no_grad()
def knn_accuracy(train_emb, train_y, test_emb, test_y, k: int = 5) -> float:
    """Cosine k-nearest-neighbour majority vote accuracy."""
    if not len(test_y) or not len(train_y):
        return float("nan")
    sims = F.normalize(test_emb, dim=1) @ F.normalize(train_emb, dim=1).T
    idx = sims.topk(min(k, len(train_y)), dim=1).indices
    votes = F.one_hot(train_y[idx], int(max(train_y.max(), test_y.max())) + 1).sum(1)
    return float((votes.argmax(1) == test_y).float().mean())


def projector(dim: int) -> nn.Module:
    """The layers SimCLR's nonlinear head adds after the backbone's last Linear (width dim)."""
    return nn.Sequential(nn.BatchNorm1d(dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))


class SimCLRModule(TrainModule):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int, monitor=None):
        super().__init__(model, cfg, steps_per_epoch)
        # BYOL and DINO (subclasses) bring heads of their own and never call project()
        own_head = type(self) is SimCLRModule and cfg.pretrain.projector == "mlp"
        self.projector = projector(len(model.labels)) if own_head else None
        self._strong = strong_config(cfg, "image")
        self._gen = torch.Generator().manual_seed(cfg.train.seed * 17 + 3)
        self.monitor = monitor  # (x_train, y_train, x_valid, y_valid) raw, or None
        self.knn: list[float] = []

    def view(self, x):
        v = strong_images(x, self._strong, self.cfg.image.size, self._gen)
        return v.contiguous(memory_format=torch.channels_last)

    def training_step(self, batch, _):
        self.start_step()
        x, _y = batch
        with self.data_time():
            a, b = self.view(x), self.view(x)
        loss = nt_xent(self.project(a), self.project(b))
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def project(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model.logits(x)
        return z if self.projector is None else self.projector(z)

    def trained(self) -> nn.Module:
        return self.model if self.projector is None else nn.ModuleList([self.model, self.projector])

    def on_train_epoch_end(self):
        if self.monitor is not None:
            acc = self.measure_knn()
            self.knn.append(round(acc, 4))
            self.log("train_knn", acc, prog_bar=True)

    def measure_knn(self) -> float:
        xtr, ytr, xva, yva = self.monitor
        was = self.model.training
        try:
            return knn_accuracy(representation(self.model, xtr), ytr, representation(self.model, xva), yva)
        finally:
            self.model.train(was)


@torch.no_grad()
def representation(model: Recognizer, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """[N, D] the backbone's features before its head (what a transferred run builds on), for raw uint8 images."""
    from seehear.engine.transfer import head_module

    model.eval()
    head, grabbed = head_module(model.backbone), []
    hook = head.register_forward_pre_hook(lambda m, i: grabbed.append(i[0].flatten(1).float().cpu()))
    dev = next(model.parameters()).device
    try:
        for i in range(0, len(x), batch_size):
            model.logits(x[i:i + batch_size].to(dev))
    finally:
        hook.remove()
    return torch.cat(grabbed) if grabbed else torch.zeros(0, 0)

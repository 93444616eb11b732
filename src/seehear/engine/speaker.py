"""The training step for speaker embeddings: AAM-softmax (Deng et al. 2019, ArcFace; as in ECAPA-TDNN) on
`backbone.embed()` of random crops of whole utterances, a new crop each epoch (`Segments`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seehear.data.decode import pcm_to_float
from seehear.engine.base_module import TrainModule
from seehear.engine.loaders import EpochCounter, shard
from seehear.features.augment import augment_waves


class Segments(EpochCounter):
    """Batches of random crops (int16 [B, S]) of whole utterances, a new crop each epoch; utterances shorter than a
    crop are repeated to fill it (zero padding would teach the model silence). Reshuffled from (seed, epoch); with sample_weights (train.sampler:
    engine/imbalance.sample_weights) an epoch draws as many utterances with replacement in those proportions."""

    def __init__(self, waves: list[torch.Tensor], y: torch.Tensor, seg: int, batch_size: int, seed: int = 0,
                 sample_weights: torch.Tensor | None = None):
        self.waves, self.y, self.seg, self.bs, self.seed, self.epoch = waves, y, seg, batch_size, seed, 0
        self.weights = sample_weights

    def __len__(self) -> int:
        return max(1, len(shard(range(len(self.y)))) // self.bs)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.begin_epoch())
        n = len(self.y)
        drawn = (torch.randperm(n, generator=g) if self.weights is None
                 else torch.multinomial(self.weights.double(), n, replacement=True, generator=g))
        order = shard(drawn)  # data parallel: this rank's utterances
        for b in range(len(self)):
            idx = order[b * self.bs:(b + 1) * self.bs]
            crops = []
            for i in idx.tolist():
                w = self.waves[i]
                if len(w) < self.seg:
                    w = w.repeat(math.ceil(self.seg / len(w)))
                start = int(torch.randint(0, len(w) - self.seg + 1, (1,), generator=g))
                crops.append(w[start:start + self.seg])
            yield torch.stack(crops), self.y[idx]


class SpeakerModule(TrainModule):
    """Crops augmented as waves (gain, noise), then AAM-softmax on embed(); optimiser, schedule and time budget
    from TrainModule."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        with self.data_time():
            return augment_waves(pcm_to_float(x), self.cfg.augment, self.cfg.audio.sample_rate)

    def _aam_loss(self, emb: torch.Tensor, y: torch.Tensor):
        s = self.cfg.speakers
        m = s.margin * min(1.0, self.progress() / 0.2)  # margin warm-up: a full margin at the start stalls training
        w = self.model.backbone.classifier.weight
        cos = F.linear(F.normalize(emb.float()), F.normalize(w.float())).clamp(-1 + 1e-7, 1 - 1e-7)
        sin = (1.0 - cos * cos).sqrt()
        phi = cos * math.cos(m) - sin * math.sin(m)  # cos(theta + m)
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)  # keep it monotonic
        target = F.one_hot(y, cos.shape[1]).bool()
        loss = F.cross_entropy(s.scale * torch.where(target, phi, cos), y)
        return loss, (cos.argmax(1) == y).float().mean()

    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        emb = self.model.backbone.embed(self.model.features(self.prepare(x)))
        loss, acc = self._aam_loss(emb, y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train_acc", acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

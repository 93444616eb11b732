"""Self-supervised image pretraining with an EMA teacher and no negatives: BYOL and DINO, beside SimCLR.

Both keep SimCLR's two strong views per image and its kNN monitor (they subclass SimCLRModule) and add a teacher: a
copy of the student that follows it as an exponential moving average after every optimiser step and never gets a
gradient. Its momentum rises from `pretrain.ema_momentum` to 1 by a cosine over training (as both papers do), so the
teacher moves less as the student settles. The teacher and the student's extra layers live in the LightningModule,
so the run's checkpoint holds them and a resumed run continues with the same teacher; the run folder's model is the
student (self.model) only, which is what a labelled run starts from with `train --from`.

- BYOL (Grill et al. 2020): the student's projection (the backbone's last Linear, as in SimCLR) goes through a
  predictor MLP and regresses the teacher's projection of the other view: 2 - 2 cos, both ways round.
- DINO (Caron et al. 2021): the projection, L2-normalised, is scored against K normalised prototypes (DINO's
  weight-normalised last layer); student and teacher both have that head. The teacher's scores are centred (a running
  mean of them, against collapse to one prototype) and sharpened (temperature 0.04 against the student's 0.1), and
  the student learns the teacher's distribution of the other view by cross-entropy. Two global views, no multi-crop.
  Under data parallelism the centre is each rank's own running mean (DINO averages it across ranks).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.engine.simclr import SimCLRModule
from seehear.models.recognizer import Recognizer


def momentum_at(progress: float, base: float) -> float:
    """The teacher's EMA momentum at a fraction `progress` of training: base at the start, 1 at the end (cosine)."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(1.0, max(0.0, progress))) + 1.0) / 2.0


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameters and float buffers (BatchNorm's running
    statistics) alike; integer buffers (batch counters) are copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s.detach().to(t.dtype), 1.0 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if t.is_floating_point():
            t.lerp_(s.to(t.dtype), 1.0 - momentum)
        else:
            t.copy_(s)


def byol_loss(online_a, online_b, target_a, target_b) -> torch.Tensor:
    """BYOL's symmetric regression: the online prediction of each view against the target projection of the other,
    2 - 2 cos each (0 when they point the same way), averaged over the two directions."""
    def regress(p, z):
        return (2.0 - 2.0 * F.cosine_similarity(p.float(), z.float(), dim=-1)).mean()

    return 0.5 * (regress(online_a, target_b) + regress(online_b, target_a))


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temperature: float, teacher_temperature: float) -> torch.Tensor:
    """Cross-entropy of each student view's softmax against the centred, sharpened teacher softmax of every other
    view (one logits tensor [B, K] per view)."""
    targets = [F.softmax((t.float() - center) / teacher_temperature, dim=-1) for t in teacher]
    logp = [F.log_softmax(s.float() / student_temperature, dim=-1) for s in student]
    terms = [-(targets[i] * logp[j]).sum(-1).mean() for i in range(len(targets)) for j in range(len(logp)) if i != j]
    return sum(terms) / len(terms)


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: list[torch.Tensor], momentum: float) -> None:
    """DINO's running centre of the teacher's logits, in place: momentum * centre + (1 - momentum) * batch mean."""
    center.mul_(momentum).add_(torch.cat(teacher).float().mean(0), alpha=1.0 - momentum)


class Prototypes(nn.Module):
    """DINO's last layer: cosines of the L2-normalised embedding with K learned, normalised prototypes (the
    weight-normalised Linear with its norm fixed at 1), so the temperatures alone set how peaked a softmax is."""

    def __init__(self, dim: int, k: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(k, dim, generator=g))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=-1) @ F.normalize(self.weight, dim=-1).to(z.dtype).T


class TeacherStudent(SimCLRModule):
    """SimCLR's views and monitor, plus `heads` (the student's own trained layers after the projection) and a
    teacher: an EMA copy of the model and of the heads named in `mirror`."""

    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int, heads: dict[str, nn.Module],
                 mirror: tuple[str, ...] = (), monitor=None):
        super().__init__(model, cfg, steps_per_epoch, monitor=monitor)
        self.heads = nn.ModuleDict(heads)
        self.mirror = tuple(mirror)
        self.teacher = copy.deepcopy(self.student_parts()).requires_grad_(False)
        self.teacher_momentum = momentum_at(0.0, cfg.pretrain.ema_momentum)

    def student_parts(self) -> nn.ModuleList:
        return nn.ModuleList([self.model, *(self.heads[k] for k in self.mirror)])

    def trained(self) -> nn.Module:
        return nn.ModuleList([self.model, self.heads])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The student's output through the mirrored heads (what the teacher's output is compared with)."""
        z = self.model.logits(x)
        for k in self.mirror:
            z = self.heads[k](z)
        return z

    @torch.no_grad()
    def teach(self, x: torch.Tensor) -> torch.Tensor:
        model, *heads = self.teacher
        z = model.logits(x)
        for h in heads:
            z = h(z)
        return z

    def two_views(self, x):
        self.start_step()
        with self.data_time():
            return self.view(x), self.view(x)

    def on_train_batch_end(self, *args):
        super().on_train_batch_end(*args)
        self.teacher_momentum = momentum_at(self.progress(), self.cfg.pretrain.ema_momentum)
        ema_update(self.teacher, self.student_parts(), self.teacher_momentum)


class BYOLModule(TeacherStudent):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int, monitor=None):
        dim, hidden = len(model.labels), cfg.pretrain.predictor_hidden
        predictor = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, dim))
        super().__init__(model, cfg, steps_per_epoch, {"predictor": predictor}, monitor=monitor)

    def training_step(self, batch, _):
        x, _y = batch
        a, b = self.two_views(x)
        pa, pb = self.heads["predictor"](self.embed(a)), self.heads["predictor"](self.embed(b))
        loss = byol_loss(pa, pb, self.teach(a), self.teach(b))
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(x))
        return loss


class DINOModule(TeacherStudent):
    def __init__(self, model: Recognizer, cfg: RunConfig, steps_per_epoch: int, monitor=None):
        p = cfg.pretrain
        head = Prototypes(len(model.labels), p.prototypes, seed=cfg.train.seed)
        super().__init__(model, cfg, steps_per_epoch, {"prototypes": head}, mirror=("prototypes",), monitor=monitor)
        self.register_buffer("center", torch.zeros(p.prototypes))  # in the checkpoint, so resume keeps it

    def training_step(self, batch, _):
        p = self.cfg.pretrain
        x, _y = batch
        a, b = self.two_views(x)
        teacher = [self.teach(a), self.teach(b)]
        loss = dino_loss([self.embed(a), self.embed(b)], teacher, self.center, p.student_temperature,
                         p.teacher_temperature)
        update_center(self.center, teacher, p.center_momentum)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

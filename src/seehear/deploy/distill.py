"""A short fine-tuning / knowledge-distillation loop for compressed models, over a run's own training split.

Kept apart from engine/trainer.py on purpose: compression only needs a few epochs of plain SGD on already-decoded
tensors, with the distillation loss of Hinton et al. (2015): KL between the teacher's and the student's softened
outputs at temperature T, scaled by T^2 so its gradients keep their size as T changes, mixed with cross-entropy on
the hard labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.data.decode import pcm_to_float

from seehear.errors import RunError

MIN_STEPS = 60
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class Split:
    x: torch.Tensor  # raw model inputs as decoded (uint8 images / int16 audio)
    y: torch.Tensor  # label indices into the run's labels


def load_split(run, name: str) -> Split:
    """The examples of split `name` ("train", "valid", "test") of a run, from split.json and the data source in
    meta.json, decoded the way training decoded them."""
    from seehear.data.cache import decode_all
    from seehear.data.sources import load_source
    from seehear.engine.checkpoint import read_json

    split_path = Path(run.run_dir) / "split.json"
    source = (run.meta.get("data") or {}).get("source")
    if not split_path.is_file() or not source:
        raise RunError(f"{run.run_dir} has no split.json or data source in meta.json; it cannot be fine-tuned")
    keys = read_json(split_path).get(name) or []
    recs = {r.key: r for r in load_source(source, label_pattern=run.cfg.data.label_pattern,
                                          modality=run.modality).records}
    chosen = [recs[k] for k in keys if k in recs and recs[k].label in run.labels]
    if not chosen:
        raise RunError(f"the {name} split of {run.run_dir} lists no files found in {source} (moved or deleted?)")
    d = decode_all(chosen, run.cfg, run.modality, progress=False)
    index = {c: i for i, c in enumerate(run.labels)}
    return Split(d.x, torch.tensor([index[chosen[i].label] for i in d.keep]))


def _float(x: torch.Tensor) -> torch.Tensor:
    return pcm_to_float(x) if x.dtype == torch.int16 else x


def _raw(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits before the run's calibration temperature (a Recognizer's logits()): distillation softens them at its
    own temperature, and a student being trained must not be scaled by the T fitted for its old weights."""
    return model.logits(x) if hasattr(model, "logits") else model(x)


def kd_loss(student_logits, teacher_logits, y, temperature: float = 4.0, alpha: float = 0.7) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, y)."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, y)


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([_raw(model, _float(x[i:i + batch])).float() for i in range(0, len(x), batch)])


def kl_to_teacher(student, teacher, x: torch.Tensor, temperature: float = 4.0) -> float:
    """Mean KL(teacher || student) of the softened outputs on x: what distillation drives down."""
    s, t = logits(student, x), logits(teacher, x)
    return float(F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(t / temperature, 1),
                          log_target=True, reduction="batchmean"))


def finetune(student: nn.Module, data: Split, *, teacher: nn.Module | None = None, epochs: int = 3,
             lr: float = 1e-3, batch_size: int = 32, temperature: float = 4.0, alpha: float = 0.7,
             min_steps: int = MIN_STEPS, seed: int = 0, frozen_norm: bool = False) -> list[float]:
    """Train `student` in place for `epochs` over `data` (at least `min_steps` steps; AdamW, cosine-decayed lr): on
    hard labels alone, or distilled from `teacher` (kept in eval mode) when one is given. `frozen_norm`: BatchNorm
    layers normalise with their running statistics and leave them as they are (quantization-aware training: the
    layers then compute in training what the exported graph, BatchNorm folded into the convolution, computes).
    Returns the mean loss per epoch."""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in student.parameters() if p.requires_grad]
    # AdamW: its step size does not depend on the model's logit scale (fastnet multiplies its logits by 1/9)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    per_epoch = int(np.ceil(len(data.y) / batch_size))
    epochs = max(epochs, int(np.ceil(min_steps / per_epoch)))  # a small training split still gets enough steps
    steps = max(1, epochs * per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    if teacher is not None:
        teacher.eval()
    history = []
    for _ in range(epochs):
        student.train()
        if frozen_norm:
            for m in student.modules():
                if isinstance(m, NORMS):
                    m.eval()
        total, n = 0.0, 0
        for idx in torch.randperm(len(data.y), generator=g).split(batch_size):
            if len(idx) < 2:  # BatchNorm cannot train on a single example
                continue
            xb, yb = _float(data.x[idx]), data.y[idx]
            out = _raw(student, xb)
            if teacher is None:
                loss = F.cross_entropy(out, yb)
            else:
                loss = kd_loss(out, _teacher_logits(teacher, xb), yb, temperature, alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
        history.append(total / max(1, n))
    student.eval()
    return history


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return _raw(teacher, x).float()

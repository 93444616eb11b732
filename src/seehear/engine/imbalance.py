"""Learning from skewed class counts: class weights (inverse frequency, or by effective number, Cui et al. 2019,
"Class-Balanced Loss Based on Effective Number of Samples"), sampling weights for engine/loaders.Batches, focal loss
(Lin et al. 2017), logit-adjusted loss and post-hoc logit adjustment (Menon et al. 2021, "Long-tail learning via
logit adjustment"), and deferred re-weighting (Cao et al. 2019, "LDAM-DRW").

Targets may be class indices [B] or (mixed) label distributions [B, K]; every loss here takes both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_weights(counts: torch.Tensor, kind: str = "inverse", beta: float = 0.999) -> torch.Tensor:
    """Per-class loss weights. inverse: N / (K n_c) (1 for every class of balanced data); effective:
    (1 - beta) / (1 - beta^n_c), the inverse of the 'effective number' of examples, scaled to mean 1 over the
    classes as in the paper."""
    n = counts.float().clamp(min=1)
    if kind == "effective":
        w = (1 - beta) / (1 - torch.pow(torch.tensor(float(beta)), n))
        return w * len(n) / w.sum()
    return counts.float().sum() / (len(n) * n)


GROUP_SAMPLERS = ("group_balanced", "group_class_balanced")


def sample_weights(y: torch.Tensor, num_classes: int, sampler: str,
                   groups: torch.Tensor | None = None) -> torch.Tensor | None:
    """Per-example drawing weights: balanced draws every class equally often, sqrt in proportion to the square
    root of its count (Mahajan et al. 2018); none keeps the data's own proportions (None: plain shuffling).
    group_balanced draws every group (`groups`: an index per example) equally often, weight 1 / its count
    (group-balanced sampling, as in Idrissi et al. 2022, "Simple data balancing achieves competitive worst-group
    accuracy"); group_class_balanced every (group, class) pair, so classes are balanced within each group too."""
    if sampler == "none":
        return None
    if sampler in GROUP_SAMPLERS:
        if groups is None or len(groups) != len(y):
            raise ValueError(f"sampler {sampler} needs a group index for each of the {len(y)} examples")
        g = groups.long()
        cell = g * num_classes + y if sampler == "group_class_balanced" else g
        return 1.0 / torch.bincount(cell).float()[cell]
    counts = torch.bincount(y, minlength=num_classes).float().clamp(min=1)
    per_class = 1.0 / counts if sampler == "balanced" else counts.rsqrt()
    return per_class[y]


def log_prior(counts: torch.Tensor) -> torch.Tensor:
    p = counts.float().clamp(min=1)
    return (p / p.sum()).log()


def _soft(target: torch.Tensor, k: int, smoothing: float) -> torch.Tensor:
    t = F.one_hot(target, k).float() if target.dim() == 1 else target.float()
    return t * (1 - smoothing) + smoothing / k if smoothing else t


def classification_loss(logits: torch.Tensor, target: torch.Tensor, *, kind: str = "ce",
                        weight: torch.Tensor | None = None, smoothing: float = 0.0, gamma: float = 2.0,
                        log_prior_: torch.Tensor | None = None, tau: float = 1.0) -> torch.Tensor:
    """Cross-entropy (ce), focal loss (focal: each example's CE scaled by (1 - p_true)^gamma; at gamma 0 exactly
    CE) or logit-adjusted CE (logit_adjusted: CE on logits + tau * log prior, so the rare classes need a larger
    margin). `weight` per class, weighted mean as in F.cross_entropy."""
    logits = logits.float()
    if kind == "logit_adjusted" and log_prior_ is not None:
        logits = logits + tau * log_prior_.to(logits.device)
    if kind != "focal":
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
    t = _soft(target, logits.shape[1], smoothing)
    logp = logits.log_softmax(1)
    focus = (1 - logp.exp()).clamp_min(0).pow(gamma) if gamma else torch.ones_like(logp)
    per_class = -(focus * t * logp)  # [B, K]
    if weight is None:
        return per_class.sum(1).mean()
    w = weight.to(logits.device)  # normalised as F.cross_entropy does: by the true classes' weights, or by B
    denom = w[target].sum() if target.dim() == 1 else torch.tensor(float(len(target)))
    return (per_class * w).sum() / denom.clamp_min(1e-12)


def posthoc_adjust(logits: torch.Tensor, log_prior_: torch.Tensor, tau: float) -> torch.Tensor:
    """Post-hoc logit adjustment: argmax of logits - tau * log prior is the balanced-error Bayes rule for a model
    trained on the skewed prior."""
    return logits - tau * log_prior_.to(logits.device)


def smoothing_conflict(counts: torch.Tensor, smoothing: float, tau: float) -> str | None:
    """Why label smoothing defeats logit adjustment here, or None. Smoothing s over K classes caps the margin the
    loss asks of a logit at log((1 - s + s/K) / (s/K)) nats; adjusting by tau * log prior moves the rarest class
    against the commonest by tau * log(n_max / n_min). When that exceeds the cap, the adjusted model favours the
    rare classes even on the common ones' examples (long-tail CIFAR-10 at imbalance 100 under smoothing 0.2: balanced
    accuracy fell from 57% to 49% with the loss, to 43% post hoc; bench/results/probes/longtail-cifar10-20-epochs.json)."""
    n = counts.float()[counts > 0]
    if smoothing <= 0 or tau <= 0 or len(n) < 2:
        return None
    k = len(counts)
    cap = float(torch.log(torch.tensor((1 - smoothing + smoothing / k) / (smoothing / k))))
    shift = tau * float(torch.log(n.max() / n.min()))
    if shift <= cap:
        return None
    return (f"label smoothing {smoothing:g} caps the logit margins at {cap:.2f} nats, below the {shift:.2f} nats "
            f"that logit adjustment (tau {tau:g}) moves the rarest class by: the rare classes will be over-favoured; "
            f"set train.label_smoothing=0")


def drw_active(progress: float, start: float | None) -> bool:
    """Deferred re-weighting: class weights apply from fraction `start` of training on (None: always)."""
    return start is None or progress >= start


__all__ = ["GROUP_SAMPLERS", "class_weights", "sample_weights", "log_prior", "classification_loss", "posthoc_adjust",
           "smoothing_conflict", "drw_active"]

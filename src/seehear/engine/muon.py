"""Muon for convolution filters, SGD for the rest, in one optimiser (so Lightning's automatic optimisation, the
lr schedule and checkpoints see a single object).

Muon (Keller Jordan 2024, "Muon: an optimizer for hidden layers"; used by airbench94_muon, 94% on CIFAR-10 in 8
epochs instead of airbench94's 9.9) replaces each filter bank's momentum by its nearest semi-orthogonal matrix,
computed with a few Newton-Schulz iterations: every direction of the update gets the same size, so rarely-excited
directions learn as fast as dominant ones. As in airbench, each filter bank is first rescaled to a fixed norm
(sqrt(out_channels)). That is harmless where a BatchNorm follows the conv (the output is scale-invariant) and
makes the learning rate an angle per step.

torch.optim.Muon takes 2-D parameters only; conv filters are flattened to [out, in * kernel] here.
Groups with `muon=True` get Muon; the others plain SGD with (Nesterov) momentum and coupled weight decay.
"""
from __future__ import annotations

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # quintic Newton-Schulz, tuned for a steep slope at zero (Muon's)
NS_STEPS = 3  # airbench94_muon's count: enough for filters this small


def orthogonalize(g: torch.Tensor, steps: int = NS_STEPS, eps: float = 1e-7) -> torch.Tensor:
    """Approximately U V^T of g = U S V^T (singular values land in roughly [0.5, 1.5]), in bf16."""
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm <= 1: the iteration's domain
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.85, nesterov: bool = True, weight_decay: float = 0.0,
                 muon: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      muon=muon))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, nesterov = group["lr"], group["momentum"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["muon"] and group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.mul_(mom).add_(g)
                g = g.add(buf, alpha=mom) if nesterov else buf
                if group["muon"]:
                    p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                    g = orthogonalize(g.reshape(len(g), -1)).view_as(p)
                p.add_(g, alpha=-lr)
        return loss

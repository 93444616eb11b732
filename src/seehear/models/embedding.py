"""A classifier's embedding: the input of the last nn.Linear that runs in its backbone (what the head separates).

One definition for everyone who needs it: few-shot prototypes (tasks/fewshot.py), the embedding maps
(trust/embeddings.py) and episodic training (engine/episodic.py), which needs it with gradients. The last Linear
is found by running one input with hooks, because module order in a class is not the order they run in.
"""
from __future__ import annotations

import torch
import torch.nn as nn


@torch.no_grad()
def last_linear(backbone: nn.Module, f: torch.Tensor) -> nn.Linear | None:
    """The nn.Linear that runs last on features `f` (one example is enough), or None when there is none."""
    ran: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: ran.append(m)) for m in backbone.modules()
             if isinstance(m, nn.Linear)]
    was = backbone.training
    backbone.eval()  # batch statistics of one example would fail (BatchNorm1d) and must not move running means
    try:
        backbone(f[:1])
    finally:
        backbone.train(was)
        for h in hooks:
            h.remove()
    return ran[-1] if ran else None


def embed_and_logits(backbone: nn.Module, f: torch.Tensor, head: nn.Linear | None) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, D] embedding, [N, classes] logits) of features `f` in one forward pass, with gradients when enabled.
    With no head (no Linear), the logits are the embedding."""
    grabbed: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda m, i: grabbed.append(i[0])) if head is not None else None
    try:
        logits = backbone(f)
    finally:
        if hook is not None:
            hook.remove()
    return (grabbed[-1].flatten(1) if grabbed else logits), logits

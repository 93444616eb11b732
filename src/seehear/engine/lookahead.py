"""Lookahead weight averaging (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back"), in the form
airbench uses for short runs: every `every` steps a slow copy of the weights moves toward the fast ones, and the
fast ones restart from it. The pull toward the average grows as progress^3, so early training is plain SGD and
the end is a smoothed average; training ends on the slow weights.

It averages the whole state (BatchNorm running statistics too), and its slow copy is saved in checkpoints so that a
resumed run continues the same average.
"""
from __future__ import annotations

import lightning.pytorch as pl
import torch


class Lookahead(pl.Callback):
    def __init__(self, every: int = 5, decay: float = 0.95 ** 5):
        self.every, self.decay = max(1, int(every)), float(decay)
        self.slow: list[torch.Tensor] | None = None
        self._loaded: list[torch.Tensor] | None = None

    @staticmethod
    def _fast(module) -> list[torch.Tensor]:
        return [v for v in module.model.state_dict().values() if v.is_floating_point()]

    def on_train_start(self, trainer, module):
        fast = self._fast(module)
        if self._loaded is not None and [t.shape for t in self._loaded] == [t.shape for t in fast]:
            self.slow = [t.to(f.device) for t, f in zip(self._loaded, fast)]
        else:
            self.slow = [t.detach().clone() for t in fast]

    @torch.no_grad()
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.slow is None or trainer.global_step % self.every:
            return
        self._pull(module, self.decay * module.progress() ** 3)

    @torch.no_grad()
    def on_train_end(self, trainer, module):
        if self.slow is not None:
            self._pull(module, 1.0)  # keep the slow weights as they are and end on them

    def _pull(self, module, decay: float) -> None:
        for slow, fast in zip(self.slow, self._fast(module)):
            slow.lerp_(fast, 1.0 - decay)
            fast.copy_(slow)

    def state_dict(self):
        return {"slow": [t.cpu() for t in self.slow]} if self.slow is not None else {}

    def load_state_dict(self, state):
        self._loaded = state.get("slow")

"""When CTC training leaves its blank-only plateau.

CTC from scratch first learns that blank is the likeliest unit in nearly every frame, and then, for hundreds to
thousands of optimiser steps, emits nothing at all (an empty greedy transcript) until it starts placing units.
The tracker watches the training batches' greedy output: its *emit ratio* is the number of units the best path
emits (repeats merged, blanks dropped) over the number of units in the batch's transcripts. The plateau starts at
the first step where the ratio falls below `enter_below` (nearly empty output) and ends at the first step after
that where it reaches `leave_at` (half the transcripts' units, by default). Both are recorded with the training
clock, with a sampled curve of the ratio, as meta.json["train"]["ctc"].

Cheap: one argmax over the batch's scores per step, vectorised, no transcripts decoded.
"""
from __future__ import annotations

import torch


def emitted_units(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> int:
    """Units the best path emits over the valid frames of log_probs [B, T, V]: repeats merged, blanks dropped."""
    best = log_probs.detach().argmax(-1)  # [B, T]
    if best.shape[1] == 0:
        return 0
    valid = torch.arange(best.shape[1], device=best.device)[None, :] < lengths.to(best.device)[:, None]
    prev = torch.nn.functional.pad(best, (1, 0), value=-1)[:, :-1]
    return int(((best != blank) & (best != prev) & valid).sum())


class PlateauTracker:
    def __init__(self, enter_below: float = 0.05, leave_at: float = 0.5, every: int = 10, max_points: int = 400):
        self.enter_below, self.leave_at, self.every, self.max_points = enter_below, leave_at, max(1, every), max_points
        self.start_step: int | None = None
        self.start_seconds: float | None = None
        self.end_step: int | None = None
        self.end_seconds: float | None = None
        self.curve: list[list[float]] = []  # [step, training seconds, emit ratio], every `every` steps
        self.last_ratio: float | None = None

    def update(self, step: int, seconds: float, log_probs: torch.Tensor, lengths: torch.Tensor,
               target_units: int) -> float:
        """One training batch's greedy output; returns its emit ratio."""
        ratio = emitted_units(log_probs, lengths) / max(1, int(target_units))
        self.last_ratio = ratio
        if self.start_step is None and ratio < self.enter_below:
            self.start_step, self.start_seconds = step, seconds
        elif self.start_step is not None and self.end_step is None and ratio >= self.leave_at:
            self.end_step, self.end_seconds = step, seconds
        if step % self.every == 0:
            self.curve.append([int(step), round(float(seconds), 2), round(ratio, 4)])
            if len(self.curve) > self.max_points:  # keep it bounded: every other point, then twice the spacing
                self.curve, self.every = self.curve[::2], self.every * 2
        return ratio

    def record(self) -> dict:
        return {"emit_ratio_enter_below": self.enter_below, "emit_ratio_leave_at": self.leave_at,
                "plateau_start_step": self.start_step,
                "plateau_start_seconds": None if self.start_seconds is None else round(self.start_seconds, 2),
                "plateau_end_step": self.end_step,
                "plateau_end_seconds": None if self.end_seconds is None else round(self.end_seconds, 2),
                "plateau_steps": (self.end_step - self.start_step) if self.end_step is not None else None,
                "last_emit_ratio": None if self.last_ratio is None else round(self.last_ratio, 4),
                "curve": [list(p) for p in self.curve], "curve_columns": ["step", "train_seconds", "emit_ratio"]}

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, v in (state or {}).items():
            if k in self.__dict__:
                setattr(self, k, v)

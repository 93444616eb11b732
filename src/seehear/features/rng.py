"""Random numbers for batch augmentation, drawn from an optional `torch.Generator` (on its own device, then moved to
the batch's), so that a run repeats however its batches are prepared (inline or in a Prefetch thread)."""
from __future__ import annotations

import numpy as np
import torch


def rand(shape, generator, device) -> torch.Tensor:
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def randn(shape, generator, device) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def randint(high: int, shape, generator, device) -> torch.Tensor:
    """Uniform integers in [0, high)."""
    return (rand(shape, generator, device) * high).long().clamp_(max=high - 1)


def uniform(lo: float, hi: float, shape, generator, device) -> torch.Tensor:
    return lo + (hi - lo) * rand(shape, generator, device)


def numpy_rng(generator) -> np.random.Generator:
    """A numpy RNG seeded from the torch generator: for Beta and Dirichlet draws, whose torch samplers take no
    generator."""
    if generator is None:
        return np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                                   device=generator.device)))

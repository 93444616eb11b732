"""How close generated images are to real ones, measured on features (no Inception network: offline, seehear uses the
penultimate features of a classifier trained on the real data; tasks/synthesize.py embeds the images).

- Fréchet distance (Heusel et al. 2017): ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted
  to the two sets; 0 for identical sets, growing with any shift of the mean or change of the spread. Biased upward
  for small sets, so it is read beside the same figure for real held-out images (the floor), at similar sizes.
- Precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls around its points whose
  radius is the distance to the point's k-th nearest neighbour in its own set (k = 3); precision is the share of
  generated points inside the real manifold (fidelity), recall the share of real points inside the generated one
  (coverage).
"""
from __future__ import annotations

import numpy as np
import torch

K = 3  # Kynkäänniemi et al.'s choice
CHUNK = 1024  # rows of the distance matrix at a time


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    from scipy.linalg import sqrtm

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a Fréchet distance needs at least two feature vectors per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():  # singular product: the usual remedy is a small ridge (pytorch-fid's)
        ridge = np.eye(len(s_a)) * 1e-6
        covmean = sqrtm((s_a + ridge) @ (s_b + ridge))
    covmean = np.real(covmean)  # rounding leaves a tiny imaginary part
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))
    return max(0.0, fd)


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), CHUNK):
        d = torch.cdist(x[i:i + CHUNK], x)
        out.append(d.kthvalue(min(k + 1, len(x)), dim=1).values)  # +1: a point's nearest is itself (0)
    return torch.cat(out)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point: is it within some centre's radius?"""
    hit = []
    for i in range(0, len(points), CHUNK):
        hit.append((torch.cdist(points[i:i + CHUNK], centres) <= radii[None]).any(1))
    return torch.cat(hit)


def precision_recall(real, fake, k: int = K) -> dict:
    """Improved precision and recall of `fake` [M, D] with respect to `real` [N, D]."""
    real = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision and recall with k={k} need more than {k} feature vectors per set")
    precision = _inside(fake, real, _kth_radius(real, k)).double().mean().item()
    recall = _inside(real, fake, _kth_radius(fake, k)).double().mean().item()
    return {"precision": precision, "recall": recall, "k": k}


def compare(reference, candidate) -> dict:
    """The three figures of `candidate` features against `reference` features, with the set sizes."""
    pr = precision_recall(reference, candidate)
    return {"frechet": frechet_distance(reference, candidate), "precision": pr["precision"], "recall": pr["recall"],
            "k": pr["k"], "n_reference": int(len(reference)), "n": int(len(candidate))}


__all__ = ["frechet_distance", "precision_recall", "compare", "K"]

"""FGSM and PGD under an L∞ bound, in the input's own scale: pixels 0..255 (ε = 2, 4, 8 / 255 of the range is
ε = 2, 4, 8 pixel levels) or waves -1..1 (ε per clip from an SNR: the perturbation's RMS is at most ε, so the
signal-to-perturbation ratio is at least the one asked for).

The functions take and return signal-scale float tensors and are usable for adversarial training as they are
(`fgsm_random_start` is the "fast is better than free" recipe, Wong et al. 2020); the model's train/eval mode is
the caller's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from seehear.trust.common import PIXEL_MAX, forward_signal, model_device, to_signal

IMAGE_EPS = (2.0, 4.0, 8.0)  # in pixel levels of 0..255
AUDIO_SNR_DB = (40.0, 30.0, 20.0)


def _bounds(model) -> tuple[float, float]:
    return (0.0, PIXEL_MAX) if model.modality == "image" else (-1.0, 1.0)


def eps_for_snr(wave: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Per-clip L∞ bound [B, 1] whose worst-case perturbation (±ε everywhere) has exactly this SNR."""
    rms = wave.float().pow(2).mean(dim=-1, keepdim=True).sqrt().clamp(min=1e-8)
    return rms * 10 ** (-snr_db / 20)


def _grad(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(forward_signal(model, x).float(), y)
    (g,) = torch.autograd.grad(loss, x)
    return g


def _project(x_adv, x, eps, lo, hi):
    return torch.max(torch.min(x_adv, x + eps), x - eps).clamp(lo, hi)


def fgsm(model, x: torch.Tensor, y: torch.Tensor, eps) -> torch.Tensor:
    """One signed-gradient step of size eps (a number, or a tensor broadcastable to x)."""
    lo, hi = _bounds(model)
    return (x + eps * _grad(model, x, y).sign()).clamp(lo, hi).detach()


def fgsm_random_start(model, x: torch.Tensor, y: torch.Tensor, eps, alpha=None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM from a uniform random point in the ε-ball with step alpha (default 1.25 ε), projected back: the
    cheap adversarial-training attack."""
    lo, hi = _bounds(model)
    alpha = 1.25 * eps if alpha is None else alpha
    delta = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps
    start = (x + delta).clamp(lo, hi)
    return _project(start + alpha * _grad(model, start, y).sign(), x, eps, lo, hi).detach()


def pgd(model, x: torch.Tensor, y: torch.Tensor, eps, alpha=None, steps: int = 10, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018): `steps` signed steps of alpha (default 2.5 ε / steps)."""
    lo, hi = _bounds(model)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x_adv = x.clone()
    if random_start:
        x_adv = (x + (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps).clamp(lo, hi)
    for _ in range(steps):
        x_adv = _project(x_adv + alpha * _grad(model, x_adv, y).sign(), x, eps, lo, hi)
    return x_adv.detach()


def adversarial_eval(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, pgd_steps: int = 20,
                     eps_levels=None, seed: int = 0) -> dict:
    """Accuracy under FGSM and PGD at each ε (images) or SNR (audio), next to clean accuracy."""
    model.eval()
    dev = model_device(model)
    audio = model.modality == "audio"
    levels = list(eps_levels or (AUDIO_SNR_DB if audio else IMAGE_EPS))
    g = torch.Generator(device=dev).manual_seed(seed)
    correct = {("clean", None): 0}
    for lv in levels:
        correct[("fgsm", lv)] = correct[("pgd", lv)] = 0
    for i in range(0, len(y), batch_size):
        xb, yb = to_signal(model, x[i:i + batch_size]).to(dev), y[i:i + batch_size].to(dev)
        with torch.no_grad():
            correct[("clean", None)] += int((forward_signal(model, xb).argmax(1) == yb).sum())
        for lv in levels:
            eps = eps_for_snr(xb, lv) if audio else float(lv)
            for name, adv in (("fgsm", fgsm(model, xb, yb, eps)),
                              ("pgd", pgd(model, xb, yb, eps, steps=pgd_steps, generator=g))):
                with torch.no_grad():
                    correct[(name, lv)] += int((forward_signal(model, adv).argmax(1) == yb).sum())
    n = max(1, len(y))
    unit = "snr_db" if audio else "eps_pixels"
    rows = [{"attack": a, unit: lv, "accuracy": c / n} for (a, lv), c in correct.items() if a != "clean"]
    return {"n": int(len(y)), "clean_accuracy": correct[("clean", None)] / n, "unit": unit,
            "pgd_steps": pgd_steps, "norm": "linf", "results": rows,
            "scale": "pixel levels of 0..255" if not audio else "L∞ bound from the clip's RMS at this SNR"}


__all__ = ["fgsm", "fgsm_random_start", "pgd", "adversarial_eval", "eps_for_snr"]

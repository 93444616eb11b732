"""Adversarial training: each training batch is replaced by a one-step adversarial perturbation of it.

- `train.adversarial=fgsm`: FGSM with random start, the "fast is better than free" recipe (Wong et al. 2020): one
  gradient step of 1.25 ε from a random point in the L∞ ball, projected back. At ε = 8/255 it can overfit
  catastrophically: seehear's CIFAR-10 recipe trained this way for 20 epochs kept 71% clean accuracy, held up
  against FGSM itself and fell to 0% under PGD (bench/results/trust-cifar10.json).
- `train.adversarial=nfgsm`: N-FGSM (de Jorge et al. 2022, "Make Some Noise"): a larger random start (±2 ε), a step
  of ε and no projection back to the ε ball: the same cost, and it avoids that collapse at ε = 8/255.
 Images are perturbed in pixel levels (ε = train.adversarial_eps of 255),
audio within a per-clip bound set by an SNR (train.adversarial_snr_db), so the perturbation is never louder than
that. seehear.trust measures the result (FGSM and PGD accuracy in `seehear report --adversarial`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def fgsm_rs_batch(model, x: torch.Tensor, y: torch.Tensor, *, eps_pixels: float, snr_db: float,
                  generator: torch.Generator | None = None, method: str = "fgsm") -> torch.Tensor:
    """The perturbed batch, in the dtype the Recognizer takes: float pixels 0..1 for images, float waves for
    audio. The model's mode and parameters are left as they are (no gradient reaches them here). method: fgsm
    (start in ±ε, step 1.25 ε, projected to ±ε) or nfgsm (start in ±2ε, step ε, images not projected: within ±3ε; audio is, to keep its SNR bound)."""
    noise_scale, step, project = (2.0, 1.0, False) if method == "nfgsm" else (1.0, 1.25, True)
    image = model.modality == "image"
    s = x.float()  # uint8 pixels as 0..255 floats; waves are already float -1..1
    if image:
        eps, lo, hi = torch.tensor(float(eps_pixels), device=s.device), 0.0, 255.0
    else:
        rms = s.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp(min=1e-8)
        eps, lo, hi = rms * 10 ** (-snr_db / 20), -1.0, 1.0
    noise = torch.rand(s.shape, generator=generator, device="cpu" if generator is not None else s.device)
    start = (s + (noise.to(s.device) * 2 - 1) * noise_scale * eps).clamp(lo, hi).detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model.logits(start / 255.0 if image else start).float(), y)
        (g,) = torch.autograd.grad(loss, start)
    adv = start.detach() + step * eps * g.sign()
    if project or not image:  # audio keeps its SNR bound under both methods
        adv = torch.max(torch.min(adv, s + eps), s - eps)
    adv = adv.clamp(lo, hi)
    return adv / 255.0 if image else adv

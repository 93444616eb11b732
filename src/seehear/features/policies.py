"""Image augmentation policies with per-sample random parameters, on whole batches: RandAugment (Cubuk et al. 2020),
TrivialAugment (Müller & Hutter 2021), AugMix (Hendrycks et al. 2020), random resized crops and colour jitter.

torchvision's v2 transforms draw one set of parameters per call, so on a batch tensor every image gets the same
op; a per-image loop costs Python time per image. Here each image draws its own op and magnitude, and each op runs
once per batch on the rows that drew it (geometric ops as one affine grid_sample with per-row matrices), so the
cost is a few tensor ops per batch whatever its size. The ops and their ranges follow torchvision's
RandAugment / TrivialAugmentWide / AugMix. Inputs are [B, C, H, W] uint8 (or float in 0..255); dtype is kept.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seehear.features.rng import numpy_rng, rand, randint, uniform

POLICIES = ("none", "randaugment", "trivialaugment", "augmix")
OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color", "contrast",
       "sharpness", "posterize", "solarize", "autocontrast", "equalize")
AUGMIX_OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y", "translate_x",
              "translate_y")  # no colour ops: AugMix keeps them for testing robustness to corruptions
BINS = 30  # magnitudes are bins of 30 (torchvision's num_magnitude_bins - 1 for TrivialAugment: 31 bins, 0..30)


def _max_magnitude(op: str, size: int, wide: bool) -> float:
    """The magnitude at bin 30 (torchvision's tables; `wide` is TrivialAugmentWide's)."""
    return {"shear_x": 0.99 if wide else 0.3, "shear_y": 0.99 if wide else 0.3,
            "translate_x": 32.0 if wide else 150.0 / 331.0 * size, "translate_y": 32.0 if wide else 150.0 / 331.0 * size,
            "rotate": 135.0 if wide else 30.0, "brightness": 0.99 if wide else 0.9, "color": 0.99 if wide else 0.9,
            "contrast": 0.99 if wide else 0.9, "sharpness": 0.99 if wide else 0.9,
            "posterize": 6.0 if wide else 4.0, "solarize": 255.0}.get(op, 0.0)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _blend(x, degenerate, factor):
    return (degenerate + factor[:, None, None, None] * (x - degenerate)).clamp_(0, 255)


def _affine(x: torch.Tensor, theta: torch.Tensor, fill: float = 0.0, mode: str = "nearest") -> torch.Tensor:
    """Resample each row of x through its own 2x3 matrix (normalised coordinates, output -> input)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill:
        inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode=mode, align_corners=False)
        out = out + fill * (1 - inside)
    return out


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel, all at once through one bincount."""
    k, c, h, w = x.shape
    v = x.round().long().clamp_(0, 255).flatten(2)  # [k, C, HW]
    base = torch.arange(k * c, device=x.device).view(k, c, 1) * 256
    hist = torch.bincount((v + base).flatten(), minlength=k * c * 256).view(k, c, 256).float()
    # PIL's rule, as torchvision has it: step = (pixels - count of the top value) // 255, and value v maps to
    # (pixels below v + step // 2) // step
    last = hist.gather(-1, (torch.where(hist > 0, torch.arange(256, device=x.device), 0).amax(-1, keepdim=True)))
    step = torch.div(h * w - last, 255, rounding_mode="floor")
    below = F.pad(hist.cumsum(-1), (1, 0))[..., :-1]
    lut = torch.div(below + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1),
                    rounding_mode="floor").clamp_(0, 255)
    out = lut.gather(-1, v).view(k, c, h, w)
    return torch.where((step == 0)[..., None], x, out)  # one value only: left as it is


def apply_op(op: str, x: torch.Tensor, m: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One op on float rows x [k, C, H, W] in 0..255 with per-row magnitudes m (in the op's units) and signs."""
    k, _, h, w = x.shape
    s = m * sign
    if op in ("shear_x", "shear_y", "translate_x", "translate_y", "rotate"):
        theta = torch.zeros(k, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        if op == "shear_x":
            theta[:, 0, 1] = s
        elif op == "shear_y":
            theta[:, 1, 0] = s
        elif op == "translate_x":
            theta[:, 0, 2] = 2 * s / w
        elif op == "translate_y":
            theta[:, 1, 2] = 2 * s / h
        else:
            a = s * math.pi / 180
            theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), -torch.sin(a)
            theta[:, 1, 0], theta[:, 1, 1] = torch.sin(a), torch.cos(a)
        return _affine(x, theta)
    if op == "brightness":
        return _blend(x, torch.zeros_like(x), 1 + s)
    if op == "color":
        return _blend(x, _gray(x).expand_as(x), 1 + s)
    if op == "contrast":
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), 1 + s)
    if op == "sharpness":
        kern = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], device=x.device) / 13
        c = x.shape[1]
        blur = F.conv2d(x, kern.expand(c, 1, 3, 3), groups=c)
        degenerate = x.clone()
        degenerate[:, :, 1:-1, 1:-1] = blur  # borders stay, as in PIL
        return _blend(x, degenerate, 1 + s)
    if op == "posterize":
        bits = (8 - m.round()).clamp(1, 8).long()
        mask = (256 - 2 ** (8 - bits)).view(k, 1, 1, 1)  # keep the top `bits` bits
        return (x.round().long() & mask).to(x.dtype)
    if op == "solarize":
        thr = (255.0 - m).view(k, 1, 1, 1)
        return torch.where(x >= thr, 255 - x, x)
    if op == "autocontrast":
        lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
        scale = torch.where(hi > lo, 255 / (hi - lo).clamp_min(1e-6), torch.ones_like(hi))
        return torch.where(hi > lo, (x - lo) * scale, x).clamp_(0, 255)
    if op == "equalize":
        return _equalize(x)
    return x


def _layer(x: torch.Tensor, ops: tuple[str, ...], choice: torch.Tensor, bins: torch.Tensor, wide: bool,
           generator, active: torch.Tensor | None = None) -> torch.Tensor:
    """Each row applies ops[choice[i]] at magnitude bin bins[i] (of BINS), with a random sign; rows where
    `active` is False are left as they are. Each op runs once, on the rows that drew it."""
    b, size = len(x), x.shape[-1]
    sign = torch.where(rand(b, generator, x.device) < 0.5, -1.0, 1.0).to(x.device)
    out = x.clone()
    for j, op in enumerate(ops):
        sel = choice == j
        if active is not None:
            sel &= active
        rows = sel.nonzero().flatten()
        if len(rows) == 0 or op == "identity":
            continue
        m = bins[rows].float() / BINS * _max_magnitude(op, size, wide)
        out[rows] = apply_op(op, x[rows], m, sign[rows])
    return out


def randaugment(x, n: int = 2, magnitude: int = 9, generator=None):
    """RandAugment: n ops per image, each chosen per image, at one magnitude (of 30)."""
    b = len(x)
    bins = torch.full((b,), int(magnitude), device=x.device)
    for _ in range(max(0, int(n))):
        x = _layer(x, OPS, randint(len(OPS), b, generator, x.device), bins, False, generator)
    return x


def trivialaugment(x, generator=None):
    """TrivialAugment (wide): one op per image at a uniformly drawn magnitude."""
    b = len(x)
    return _layer(x, OPS, randint(len(OPS), b, generator, x.device), randint(BINS + 1, b, generator, x.device),
                  True, generator)


def augmix(x, severity: int = 9, width: int = 3, depth: int = 3, generator=None):
    """AugMix: `width` chains of 1..depth ops each (depth drawn per image), mixed with Dirichlet weights and then
    with the original by a Beta(1, 1) share, per image (the JSD consistency loss is not used)."""
    b, dev = len(x), x.device
    rng = numpy_rng(generator)
    w = torch.as_tensor(rng.dirichlet([1.0] * width, size=b), dtype=x.dtype, device=dev)  # [B, width]
    keep = torch.as_tensor(rng.beta(1.0, 1.0, size=b), dtype=x.dtype, device=dev)
    mixed = torch.zeros_like(x)
    for i in range(width):
        n_ops = randint(depth, b, generator, dev) + 1
        chain = x
        for d in range(depth):
            bins = randint(int(severity) + 1, b, generator, dev)
            chain = _layer(chain, AUGMIX_OPS, randint(len(AUGMIX_OPS), b, generator, dev), bins, False, generator,
                           active=n_ops > d)
        mixed += w[:, i, None, None, None] * chain
    k = keep[:, None, None, None]
    return k * x + (1 - k) * mixed


def resized_crop(x, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), generator=None):
    """Random resized crop (Szegedy et al. 2015): a box of a drawn area share and aspect per image, resized back
    to the full size (bilinear); one grid_sample for the batch."""
    b, dev = len(x), x.device
    area = uniform(float(scale[0]), float(scale[-1]), b, generator, dev)
    logr = uniform(math.log(ratio[0]), math.log(ratio[1]), b, generator, dev)
    sw = (area * logr.exp()).sqrt().clamp(max=1.0)
    sh = (area / logr.exp()).sqrt().clamp(max=1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1] = sw, sh
    theta[:, 0, 2] = (rand(b, generator, dev) * 2 - 1) * (1 - sw)
    theta[:, 1, 2] = (rand(b, generator, dev) * 2 - 1) * (1 - sh)
    return _affine(x, theta, mode="bilinear")


def color_jitter(x, strength: float, generator=None):
    """Brightness, contrast and saturation by factors in [1 - s, 1 + s] and hue by up to s/4 of a turn (a
    rotation of the YIQ chroma plane), drawn per image."""
    b, dev, s = len(x), x.device, float(strength)
    x = _blend(x, torch.zeros_like(x), uniform(1 - s, 1 + s, b, generator, dev))
    x = _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), uniform(1 - s, 1 + s, b, generator, dev))
    if x.shape[1] != 3:
        return x
    x = _blend(x, _gray(x).expand_as(x), uniform(1 - s, 1 + s, b, generator, dev))
    a = uniform(-s / 4, s / 4, b, generator, dev) * 2 * math.pi
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev)
    cos, sin = torch.cos(a), torch.sin(a)
    rot = torch.zeros(b, 3, 3, device=dev)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = torch.linalg.inv(yiq) @ rot @ yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", m.to(x.dtype), x).clamp_(0, 255)


def random_grayscale(x, p: float, generator=None):
    """A share p of the images (drawn per image) replaced by their luma in every channel: SimCLR's random
    grayscale, which stops two views from being matched by their colours alone."""
    if x.shape[1] != 3:
        return x
    grey = rand(len(x), generator, x.device) < p
    return torch.where(grey[:, None, None, None], _gray(x).expand_as(x), x)


def policies_on(cfg) -> bool:
    """Whether cfg (AugmentConfig) switches on any of apply_policies' steps."""
    return cfg.policy != "none" or bool(cfg.resized_crop) or bool(cfg.color_jitter) or cfg.grayscale > 0


def apply_policies(x: torch.Tensor, cfg, generator=None) -> torch.Tensor:
    """The image policies switched on in cfg (AugmentConfig): resized crop, then the policy, then colour jitter, then
    random greyscale."""
    if len(x) == 0 or not policies_on(cfg):
        return x
    dtype = x.dtype
    y = x.float()
    if cfg.resized_crop:
        y = resized_crop(y, cfg.resized_crop, generator=generator)
    if cfg.policy == "randaugment":
        y = randaugment(y, cfg.policy_ops, cfg.policy_magnitude, generator)
    elif cfg.policy == "trivialaugment":
        y = trivialaugment(y, generator)
    elif cfg.policy == "augmix":
        y = augmix(y, cfg.policy_magnitude, generator=generator)
    if cfg.color_jitter:
        y = color_jitter(y, cfg.color_jitter, generator)
    if cfg.grayscale:
        y = random_grayscale(y, cfg.grayscale, generator)
    return y.round_().clamp_(0, 255).to(dtype) if not dtype.is_floating_point else y.to(dtype)


__all__ = ["POLICIES", "OPS", "apply_op", "randaugment", "trivialaugment", "augmix", "resized_crop", "color_jitter",
           "random_grayscale", "policies_on", "apply_policies"]

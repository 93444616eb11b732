"""A class-conditional GAN for small images (16, 32 or 64 pixels), after SNGAN / BigGAN's small-image nets:

- generator: z and a class embedding → 4x4 → (nearest upsample, conv, conditional BatchNorm, ReLU) blocks → tanh;
  conditional BatchNorm (gain and bias per class, de Vries et al. 2017) is how BigGAN conditions its generator;
- discriminator: spectrally normalised convs (Miyato et al. 2018) down to 4x4, ReLU, global sum pooling, and a
  projection head (Miyato & Koyama 2018): D(x, y) = w·h + embed(y)·h.

Not a Recognizer and not in the model registry: it is the `synthesize` task's own model (tasks/synthesize.py).
Images are float in [-1, 1].
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from seehear.errors import ConfigError

SIZES = (16, 32, 64)


def check_size(size: int) -> int:
    if size not in SIZES:
        raise ConfigError(f"the GAN makes images of {', '.join(map(str, SIZES))} pixels, not {size}: set "
                          f"image.size to one of them (larger images need a larger model than this CPU GAN)")
    return size


class CondBatchNorm(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x, y):
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class GenBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.bn1, self.bn2 = CondBatchNorm(c_in, num_classes), CondBatchNorm(c_out, num_classes)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, y):  # residual, as SNGAN's ResNet generator
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class Generator(nn.Module):
    def __init__(self, num_classes: int, size: int = 32, channels: int = 3, z_dim: int = 128, width: int = 64):
        super().__init__()
        self.num_classes, self.size, self.channels, self.z_dim = num_classes, check_size(size), channels, z_dim
        blocks = int(math.log2(size // 4))
        widths = [width * 2 ** max(0, blocks - 1 - i) for i in range(blocks + 1)]  # 4w, 2w, w ... at the end
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Linear(2 * z_dim, widths[0] * 16)
        self.blocks = nn.ModuleList(GenBlock(widths[i], widths[i + 1], num_classes) for i in range(blocks))
        self.out_bn = nn.BatchNorm2d(widths[-1])
        self.out = nn.Conv2d(widths[-1], channels, 3, padding=1)
        self.c0 = widths[0]

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], 1)).view(len(z), self.c0, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.out_bn(h))))


class DiscBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.first = first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        return h + F.avg_pool2d(self.skip(x), 2)


class Discriminator(nn.Module):
    def __init__(self, num_classes: int, size: int = 32, channels: int = 3, width: int = 64):
        super().__init__()
        blocks = int(math.log2(check_size(size) // 4))
        widths = [channels] + [width * 2 ** min(i, 2) for i in range(blocks)]
        self.blocks = nn.Sequential(*(DiscBlock(widths[i], widths[i + 1], i == 0) for i in range(blocks)))
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.linear(h).flatten() + (self.embed(y) * h).sum(1)  # the projection term


class GAN(nn.Module):
    """The pair, and the exponential moving average of the generator that makes the images (Yazici et al. 2019)."""

    def __init__(self, labels: list[str], size: int = 32, channels: int = 3, z_dim: int = 128, width: int = 64):
        super().__init__()
        self.labels = list(labels)
        self.generator = Generator(len(labels), size, channels, z_dim, width)
        self.generator_ema = Generator(len(labels), size, channels, z_dim, width)
        self.generator_ema.load_state_dict(self.generator.state_dict())
        self.generator_ema.requires_grad_(False)
        self.discriminator = Discriminator(len(labels), size, channels, width)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for e, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            e.copy_(b)  # BatchNorm statistics follow the live generator

    @torch.no_grad()
    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 [B, C, H, W] images of classes y from the averaged generator."""
        g = self.generator_ema
        z = torch.randn(len(y), g.z_dim, generator=generator).to(y.device)
        was = g.training
        g.eval()
        x = g(z, y)
        g.train(was)
        return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


__all__ = ["GAN", "Generator", "Discriminator", "check_size", "SIZES"]

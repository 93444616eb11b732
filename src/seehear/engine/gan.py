"""The GAN's training step (task: synthesize): hinge loss (Lim & Ye 2017; Miyato et al. 2018), a discriminator Adam
step on every batch and a generator step after every `model.kwargs.d_steps` of them (manual optimisation, two
optimisers), DiffAugment (Zhao et al. 2020) on real and generated images alike before the discriminator sees them,
and an EMA of the generator.

Why several discriminator steps per generator step (SNGAN uses 5, BigGAN and DiffAugment's CIFAR-10 runs 4): with
one each, the generator outran the discriminator on CIFAR-10 (its hinge loss stayed at 2.0, i.e. no separation of
real from generated) and each class collapsed to one image whatever the noise; with 4 the discriminator separates
them and the samples vary (bench/results/probes/gan-d-steps.json).

Time budget, data-wait accounting and resume come from TrainModule; its learning-rate schedule does not apply
(GANs train at a constant rate).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.engine.base_module import TrainModule
from seehear.features.rng import rand

BETAS = (0.0, 0.9)  # Adam's betas for GANs (SNGAN, BigGAN)


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment's colour, translation (1/8 of the side) and cutout (half the side): differentiable, so the
    generator's gradient goes through the same augmentation the discriminator sees. x: float [-1, 1]."""
    b, _, h, w = x.shape
    dev = x.device
    x = x + (rand((b, 1, 1, 1), generator, dev) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand((b, 1, 1, 1), generator, dev) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (rand((b, 1, 1, 1), generator, dev) + 0.5) + mean  # contrast
    s = max(1, h // 8)
    shift = (rand((b, 2), generator, dev) * (2 * s + 1)).long() - s  # translation, zero fill
    padded = F.pad(x, (s, s, s, s))
    rows = (torch.arange(h, device=dev)[None] + s - shift[:, :1])[:, :, None]
    cols = (torch.arange(w, device=dev)[None] + s - shift[:, 1:])[:, None, :]
    x = padded.permute(0, 2, 3, 1)[torch.arange(b, device=dev)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    ch, cw = h // 2, w // 2  # cutout
    cy = (rand(b, generator, dev) * (h + 1 - ch % 2)).long()
    cx = (rand(b, generator, dev) * (w + 1 - cw % 2)).long()
    r = torch.arange(h, device=dev)[None]
    c = torch.arange(w, device=dev)[None]
    keep = ~(((r >= cy[:, None] - ch // 2) & (r < cy[:, None] + ch - ch // 2))[:, :, None]
             & ((c >= cx[:, None] - cw // 2) & (c < cx[:, None] + cw - cw // 2))[:, None, :])
    return x * keep[:, None].to(x.dtype)


class GanModule(TrainModule):
    def __init__(self, model, cfg: RunConfig, steps_per_epoch: int):
        super().__init__(model, cfg, steps_per_epoch)
        self.automatic_optimization = False
        self.ema_decay = float(cfg.model.kwargs.get("ema", 0.999))  # the generator's EMA (not train.ema: that
        # is Lightning's average of every weight, discriminator included)
        self.d_steps = int(cfg.model.kwargs.get("d_steps", 1))  # checked by tasks/synthesize
        # discriminator and generator steps so far, kept in checkpoints: a resumed run keeps the same rhythm and
        # the EMA's warm-up goes on from where it was (counted across epochs: a small data set's epoch may hold
        # fewer batches than d_steps)
        self.d_done = self.g_done = 0
        self._g = torch.Generator().manual_seed(cfg.train.seed * 13 + 5)

    def configure_optimizers(self):
        lr = self.cfg.train.lr
        return [torch.optim.Adam(self.model.discriminator.parameters(), lr=lr, betas=BETAS),
                torch.optim.Adam(self.model.generator.parameters(), lr=lr, betas=BETAS)]

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_steps"] = {"d": self.d_done, "g": self.g_done}

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        done = checkpoint.get("gan_steps", {})
        self.d_done, self.g_done = int(done.get("d", 0)), int(done.get("g", 0))

    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        with self.data_time():
            real = x.float() / 127.5 - 1
        opt_d, opt_g = self.optimizers()
        gen, disc = self.model.generator, self.model.discriminator
        z = torch.randn(len(y), gen.z_dim, generator=self._g).to(real.device)
        fake_y = y[torch.randperm(len(y), generator=self._g).to(y.device)]  # classes as often as in the data

        self.d_done += 1
        g_step = self.d_done % self.d_steps == 0
        with torch.set_grad_enabled(g_step):  # the generator's graph only for a batch that also steps it
            fake = gen(z, fake_y)
        d_real = disc(diff_augment(real, self._g), y)
        d_fake = disc(diff_augment(fake.detach(), self._g), fake_y)
        loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.log("train_d_loss", loss_d, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        if not g_step:
            return

        loss_g = -disc(diff_augment(fake, self._g), fake_y).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        n = self.g_done
        self.g_done += 1
        # warm-up of the average (TensorFlow's num_updates rule): early on it follows the generator closely, so a
        # short run's samples come from a trained generator rather than from its initial weights
        self.model.update_ema(min(self.ema_decay, (1 + n) / (10 + n)))
        self.log("train_g_loss", loss_g, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))


__all__ = ["GanModule", "diff_augment"]

"""Training an audio-image recognizer (models/fusion.py) through the classification step: batches carry (image,
audio) pairs; images get the image augmentation (features/augment.py), recordings the audio augmentation (and the
audio branch its SpecAugment), and modality dropout marks one input of some examples absent, so that either input
alone still works at test time. Degradation (fusion.degrade_prob) swamps one input of some examples in noise while
it stays present, so that a ruined input is outvoted rather than trusted.
"""
from __future__ import annotations

import torch

from seehear.config import RunConfig
from seehear.data.decode import pcm_to_float
from seehear.engine.base_module import batch_size_for
from seehear.engine.classify import ClassifyModule
from seehear.engine.loaders import Batches, Prefetch
from seehear.engine.trainer import bf16_supported, fit_module, pick_device
from seehear.features.audio_augment import mix_at_snr
from seehear.features.augment import augment_images, augment_waves

PIXEL_SIGMA = (32.0, 255.0)  # degradation: Gaussian pixel noise, sigma drawn in this range (0..255 pixels)
AUDIO_SNR_DB = (-10.0, 10.0)  # degradation: white noise at an SNR drawn in this range


def degrade(image: torch.Tensor, audio: torch.Tensor, p: float, generator: torch.Generator):
    """With probability p per example, one input (either, at random) drowned in noise; returns new tensors and the
    [B, 2] mask of what was degraded. Images stay uint8, recordings float."""
    b = len(audio)
    hit = torch.rand(b, generator=generator) < p
    side = torch.randint(0, 2, (b,), generator=generator)
    rows_i, rows_a = (hit & (side == 0)).nonzero().flatten(), (hit & (side == 1)).nonzero().flatten()
    if len(rows_i):
        sigma = torch.empty(len(rows_i)).uniform_(*PIXEL_SIGMA, generator=generator).view(-1, 1, 1, 1)
        noise = torch.randn(image[rows_i].shape, generator=generator) * sigma
        image = image.clone()
        image[rows_i] = (image[rows_i].float() + noise.to(image.device)).clamp(0, 255).round().to(image.dtype)
    if len(rows_a):
        snr = torch.empty(len(rows_a)).uniform_(*AUDIO_SNR_DB, generator=generator)
        noise = torch.randn(audio[rows_a].shape, generator=generator)
        audio = audio.clone()
        audio[rows_a] = mix_at_snr(audio[rows_a], noise.to(audio.device), snr.to(audio.device)).clamp(-1, 1)
    mask = torch.zeros(b, 2, dtype=torch.bool)
    mask[rows_i, 0], mask[rows_a, 1] = True, True
    return image, audio, mask

# The single-modality accuracies metrics.json reports beside the fused one: which inputs are present.
VIEWS = {"fused": (True, True), "image_only": (True, False), "audio_only": (False, True)}


class PairBatches(Batches):
    """Batches of ((image, audio), y), shuffled each epoch from (seed, epoch) like Batches."""

    def __init__(self, image, audio, y, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False):
        super().__init__(image, y, batch_size, shuffle, seed=seed, drop_last=drop_last)
        self.audio = audio

    def __iter__(self):
        order = self._shard(self._order(self.begin_epoch()))
        for i in range(len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            yield (self.x[idx], self.audio[idx]), self.y[idx]


class FusionModule(ClassifyModule):
    def __init__(self, model, cfg: RunConfig, steps_per_epoch: int, class_counts: torch.Tensor | None = None):
        super().__init__(model, cfg, steps_per_epoch, class_counts=class_counts)
        self._drop = torch.Generator().manual_seed(cfg.train.seed * 131 + 3)

    def augment(self, x, train: bool, generator: torch.Generator | None = None):
        image, audio = x
        audio = pcm_to_float(audio)
        if train:
            image = augment_images(image, self._augment_cfg, generator)
            audio = augment_waves(audio, self._augment_cfg, self.cfg.audio.sample_rate, generator)
            if self.cfg.fusion.degrade_prob > 0:
                image, audio, _ = degrade(image, audio, self.cfg.fusion.degrade_prob, generator or self._drop)
        return image.contiguous(memory_format=torch.channels_last), audio

    def forward(self, x):
        return self.model(*self.prepare(x, train=False))

    def present_mask(self, b: int, device) -> torch.Tensor:
        """[B, 2] bool: with probability fusion.modality_dropout an example loses one input (either, at random)."""
        p = float(self.cfg.fusion.modality_dropout)
        present = torch.ones(b, 2, dtype=torch.bool)
        drop = torch.rand(b, generator=self._drop) < p
        side = torch.randint(0, 2, (b,), generator=self._drop)
        present[drop, side[drop]] = False
        return present.to(device)

    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        image, audio = self.prepare(x, train=True)
        ei, ea, m = self.model.embed(image, audio, self.present_mask(len(y), y.device))
        logits = self.model.fuse(ei, ea, m)
        loss = self.loss(logits, y, train=True)
        w = self.cfg.fusion.unimodal_weight
        if w > 0:  # each input alone through the same fusion head: neither branch can leave the work to the other
            zero = torch.zeros_like(ei)
            for col, alone in ((0, (ei, zero)), (1, (zero, ea))):
                keep = m[:, col] > 0
                if keep.any():
                    only = torch.zeros_like(m)
                    only[:, col] = 1.0
                    z = self.model.fuse(alone[0][keep], alone[1][keep], only[keep])
                    loss = loss + w * self.loss(z, y[keep], train=True)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=len(y))
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        image, audio = self.prepare(x, train=False)
        for view, (has_image, has_audio) in VIEWS.items():
            logits = self.model(image if has_image else None, audio if has_audio else None)
            suffix = "" if view == "fused" else f"_{view}"
            if view == "fused":
                self.log("val_loss", self.loss(logits, y), prog_bar=True, batch_size=len(y), sync_dist=True)
            self.log(f"val_acc{suffix}", (logits.argmax(1) == y).float().mean(), prog_bar=view == "fused",
                     batch_size=len(y), sync_dist=True)


def fit_fusion(model, cfg: RunConfig, train: tuple, valid: tuple | None, run_dir, resume: bool = False,
               progress: bool = True) -> dict:
    """Train on in-memory (images uint8 [N,C,H,W], waves int16 [N,S], labels [N]) tensors."""
    image, audio, y = train
    t = cfg.train
    counts = torch.bincount(y, minlength=len(model.labels)).float()
    batch_size = batch_size_for(len(y), t.batch_size)
    loader = PairBatches(image, audio, y, batch_size, shuffle=True, seed=t.seed, drop_last=True)
    val_loader = PairBatches(*valid, batch_size=max(256, t.batch_size), shuffle=False) \
        if valid is not None and len(valid[2]) else None
    module = FusionModule(model, cfg, len(loader), class_counts=counts)
    if pick_device(cfg) == "cpu":  # the audio side's augmentation in a background thread, as for audio runs
        loader = Prefetch(loader, module.loader_augment, seed=t.seed)
        module.augment_in_loader = True
    init = getattr(model.image.backbone, "init_from_data", None)
    if init is not None:  # an image backbone that initialises from data (fastnet's whitening)
        with torch.no_grad():
            init(model.image.frontend(image[:5000]))
    model.image.to(memory_format=torch.channels_last)
    info = fit_module(module, cfg, loader, val_loader, run_dir, resume=resume, progress=progress)
    model.eval()
    return {**info, "batch_size": batch_size}


@torch.no_grad()  # not inference_mode: temperature scaling fits on these logits with autograd
def fusion_logits(model, image: torch.Tensor | None, audio: torch.Tensor | None, *, batch_size: int = 256,
                  precision: str = "auto", raw: bool = False) -> torch.Tensor:
    """Float32 logits of raw inputs (uint8 images, int16/float waves; either may be None: marked absent), in
    batches; raw=True: before the post-hoc shift and the temperature."""
    model.eval()
    dev = next(model.parameters()).device
    use_bf16 = str(precision) in ("auto", "bf16", "bf16-mixed") and bf16_supported(dev.type)
    n = len(image) if image is not None else len(audio)
    out = []
    for i in range(0, n, batch_size):
        xi = None if image is None else image[i:i + batch_size].to(dev).contiguous(memory_format=torch.channels_last)
        xa = None if audio is None else pcm_to_float(audio[i:i + batch_size].to(dev))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            z = model.logits(xi, xa) if raw else model(xi, xa)
        out.append(z.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(model.labels))

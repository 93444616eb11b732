"""A Recognizer is the whole trained thing: front end + backbone + the label names.

It takes raw input — uint8 pixels [B,C,H,W], image sequences [B,T,C,H,W] or waveform samples [B,S] (float, or
int16 as cached) — so prediction, export and serving never re-implement feature extraction, and the front end runs
batched on the model's device.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.models.registry import create_model, get_spec

TTA_VIEWS = {"none": 1, "flip": 2, "flip-translate": 6}  # image.tta: how many views of each image are averaged
TTA_MODES = tuple(TTA_VIEWS)


class Recognizer(nn.Module):
    def __init__(self, frontend: nn.Module, backbone: nn.Module, labels: list[str], modality: str,
                 specaugment: nn.Module | None = None, tta: str = "none", vtlp: nn.Module | None = None):
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone
        self.specaugment = specaugment  # only acts in training mode
        self.vtlp = vtlp  # audio: per-clip filterbank warp factors (features/vtlp.py), only in training mode
        self.labels = list(labels)
        self.modality = modality
        self.tta = tta  # outside training, logits average views of the image in one batch (see forward)
        # Temperature scaling (seehear.trust.calibration): logits / T everywhere, so predict, evaluate and the ONNX
        # export agree. Not in the state dict: kept in meta.json ("calibration") and set by load_run, so runs
        # written before it existed still load.
        self.register_buffer("temperature", torch.ones(()), persistent=False)
        # post-hoc logit adjustment (train.posthoc_tau): subtracted outside training; not in the weights file (the
        # run's meta.json holds it), so runs without it load as before
        self.register_buffer("logit_shift", torch.zeros(0), persistent=False)

    def set_logit_shift(self, shift) -> None:
        self.logit_shift = torch.as_tensor(shift, dtype=torch.float32).to(self.logit_shift.device)

    @property
    def views(self) -> int:
        """How many inputs the backbone sees per input in eval mode (test-time augmentation)."""
        return TTA_VIEWS[self.tta] if self.modality == "image" else 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.vtlp is not None and self.training:
            f = self.frontend(x, warp=self.vtlp.factors(len(x), x.device))
        else:
            f = self.frontend(x)
        if self.specaugment is not None and self.training:
            f = self.specaugment(f)
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits(x)
        if self.logit_shift.numel() and not self.training:
            out = out - self.logit_shift.to(out.dtype)
        return out / self.temperature  # T is fitted on logits() (seehear.trust.calibration)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's logits, before any post-hoc shift and the temperature."""
        f = self.features(x)
        if self.tta == "none" or self.training or f.dim() != 4:
            return self.backbone(f)
        views = [f, f.flip(-1)]  # "flip": the image and its mirror
        if self.tta == "flip-translate":  # airbench's 6 views: and both shifted 1 px up-left and down-right
            h, w = f.shape[-2:]
            p = F.pad(f, (1, 1, 1, 1), mode="reflect")
            for s in (p[..., :h, :w], p[..., 2:, 2:]):
                views += [s, s.flip(-1)]
        out = self.backbone(torch.cat(views)).unflatten(0, (len(views), -1))  # no len(f): batch axis stays dynamic
        if len(views) == 2:
            return out.mean(0)
        return 0.5 * out[:2].mean(0) + 0.5 * out[2:].mean(0)  # the unshifted pair weighs as much as the 4 shifted


def input_spec(cfg: RunConfig, modality: str) -> dict:
    """What the model expects as raw input and as features; saved in meta.json."""
    if modality == "image":
        return {"modality": "image", "channels": cfg.image.channels, "size": cfg.image.size,
                "resize": cfg.image.resize, "dtype": "uint8"}
    if modality == "frames":
        return {"modality": "frames", "frames": cfg.frames.count, "channels": cfg.image.channels,
                "size": cfg.image.size, "resize": cfg.image.resize, "dtype": "uint8"}
    from seehear.features.audio import num_frames

    a = cfg.audio
    bands = a.n_mfcc if a.features == "mfcc" else a.n_mels
    return {"modality": "audio", "sample_rate": a.sample_rate, "clip_seconds": a.clip_seconds,
            "num_samples": int(round(a.sample_rate * a.clip_seconds)), "crop": a.crop,
            "features": a.features, "feature_shape": [1, bands, num_frames(a)]}


def build_recognizer(cfg: RunConfig, labels: list[str], modality: str, norm_stats: dict | None = None) -> Recognizer:
    """Build the untrained model a config describes (or rebuild a trained one before loading its weights)."""
    if modality == "audio-image":  # an image and an audio branch, fused (models/fusion.py)
        from seehear.models.fusion import build_fusion

        return build_fusion(cfg, labels, norm_stats)
    kwargs = dict(cfg.model.kwargs)
    spec = get_spec(cfg.model.name)
    if spec.task != "classify":
        from seehear.errors import ConfigError

        raise ConfigError(f"model {spec.name} is a {spec.task} model (per-frame units), not a classifier; train it "
                          f"with --task {spec.task}, or pick one from `seehear models --task classify`")
    if spec.modality != modality:
        from seehear.errors import ConfigError

        raise ConfigError(f"model {spec.name} is for {spec.modality}, but the data is {modality}; "
                          f"pick one from `seehear models --modality {modality}`")
    if cfg.model.pretrained:
        kwargs["pretrained"] = cfg.model.pretrained
    specaug, tta, vtlp = None, "none", None
    if modality == "image":
        tta = cfg.image.tta
        if tta not in TTA_MODES:
            from seehear.errors import ConfigError

            raise ConfigError(f"image.tta {tta!r} unknown; use one of {', '.join(TTA_MODES)}")
        from seehear.features.image import ImageNormalize

        c = cfg.image.channels
        stats = norm_stats or {"mean": [0.5] * c, "std": [0.25] * c}
        frontend = ImageNormalize(stats["mean"], stats["std"])
        in_ch, size = c, (cfg.image.size, cfg.image.size)
    elif modality == "frames":  # image sequences: the image front end normalises each frame ([B,T,C,H,W] broadcasts)
        from seehear.features.augment import check_frames_settings
        from seehear.features.image import ImageNormalize

        check_frames_settings(cfg)
        c = cfg.image.channels
        stats = norm_stats or {"mean": [0.5] * c, "std": [0.25] * c}
        frontend = ImageNormalize(stats["mean"], stats["std"])
        in_ch, size = c, (cfg.frames.count, cfg.image.size, cfg.image.size)
    else:
        from seehear.features.audio import build_audio_frontend
        from seehear.features.augment import SpecAugment

        frontend = build_audio_frontend(cfg.audio)
        shape = input_spec(cfg, modality)["feature_shape"]
        in_ch, size = 1, (shape[1], shape[2])
        g = cfg.augment
        if g.freq_masks or g.time_masks:
            specaug = SpecAugment(g.freq_masks, g.freq_width, g.time_masks, g.time_width)
        if g.vtlp:
            from seehear.features.vtlp import VTLP, check_range

            vtlp = VTLP(*check_range(g.vtlp))
    backbone = create_model(cfg.model.name, num_classes=len(labels), in_channels=in_ch, input_size=size, **kwargs)
    return Recognizer(frontend, backbone, labels, modality, specaug, tta, vtlp)

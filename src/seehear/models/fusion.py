"""An audio-image recognizer: an image branch and an audio branch, each a Recognizer (its own front end inside:
pixels and waveform in), fused by fusion.mode.

Each branch is a registered backbone built with `embed_dim` outputs, so its output is the embedding. A per-example
`present` mask [B, 2] (image, audio) says which inputs are real: an absent one's embedding is zeroed and the mask
itself goes to the fusion, so a missing modality is marked absent, not fed zeros that pretend to be data.

    early      concat(image emb, audio emb, mask) -> MLP -> logits
    late       each branch its own linear classifier; logits averaged with learned weights over the present ones
    attention  the embeddings as 2 tokens (+ a learned type embedding); a learned query attends over the present
               tokens (a per-example weighting), then a linear head
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from seehear.config import ModelConfig, RunConfig
from seehear.errors import ConfigError, DataError
from seehear.models.recognizer import Recognizer, build_recognizer
from seehear.models.registry import get_spec

MODES = ("early", "late", "attention")
IMAGE, AUDIO = 0, 1  # columns of the present mask


class FusionRecognizer(nn.Module):
    modality = "audio-image"
    views = 1

    def __init__(self, image: Recognizer, audio: Recognizer, labels: list[str], mode: str, embed_dim: int,
                 hidden: int = 128):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"fusion.mode {mode!r} unknown; use one of {', '.join(MODES)}")
        self.image, self.audio = image, audio
        self.labels, self.mode, self.embed_dim = list(labels), mode, int(embed_dim)
        c, e = len(self.labels), self.embed_dim
        if mode == "early":
            self.head = nn.Sequential(nn.Linear(2 * e + 2, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, c))
        elif mode == "late":
            self.image_head, self.audio_head = nn.Linear(e, c), nn.Linear(e, c)
            self.branch_weights = nn.Parameter(torch.zeros(2))  # softmax -> the weight of each branch's logits
        else:
            self.type_embed = nn.Parameter(torch.zeros(2, e))
            self.query = nn.Parameter(torch.randn(1, 1, e) * e ** -0.5)
            self.attn = nn.MultiheadAttention(e, num_heads=4 if e % 4 == 0 else 1, batch_first=True)
            self.norm = nn.LayerNorm(e)
            self.head = nn.Linear(e, c)
        self.register_buffer("temperature", torch.ones(()), persistent=False)  # as Recognizer: set by load_run
        self.register_buffer("logit_shift", torch.zeros(0), persistent=False)

    def set_logit_shift(self, shift) -> None:
        self.logit_shift = torch.as_tensor(shift, dtype=torch.float32).to(self.logit_shift.device)

    def embed(self, image: torch.Tensor | None, audio: torch.Tensor | None,
              present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image emb [B,E], audio emb [B,E], present [B,2] float); a missing input's branch is not run."""
        given = [x for x in (image, audio) if x is not None]
        if not given:
            raise DataError("an audio-image model needs an image, a recording, or both")
        b, dev = len(given[0]), given[0].device
        if present is None:
            present = torch.ones(b, 2, dtype=torch.bool, device=dev)
        present = present.to(dev).bool().clone()
        embs = []
        for col, (branch, x) in enumerate(((self.image, image), (self.audio, audio))):
            if x is None:
                present[:, col] = False
                embs.append(torch.zeros(b, self.embed_dim, device=dev))
            else:
                embs.append(branch(x).float() * present[:, col:col + 1])  # absent: zeroed, whatever came in
        return embs[0], embs[1], present.float()

    def logits(self, image=None, audio=None, present=None) -> torch.Tensor:
        return self.fuse(*self.embed(image, audio, present))

    def fuse(self, ei: torch.Tensor, ea: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Logits from the two embeddings (absent ones zeroed) and the present mask [B, 2] (float)."""
        if self.mode == "early":
            return self.head(torch.cat([ei, ea, m], 1))
        if self.mode == "late":
            w = torch.softmax(self.branch_weights, 0) * m  # only the present branches vote
            w = w / w.sum(1, keepdim=True).clamp_min(1e-6)
            return w[:, :1] * self.image_head(ei) + w[:, 1:] * self.audio_head(ea)
        tokens = torch.stack([ei, ea], 1) + self.type_embed  # [B, 2, E]
        absent = m < 0.5
        absent = absent & ~absent.all(1, keepdim=True)  # never mask both (no input at all is refused in embed)
        q = self.query.expand(tokens.size(0), -1, -1)  # size(), not len(): ONNX export keeps the batch dynamic
        pooled, _ = self.attn(q, tokens, tokens, key_padding_mask=absent, need_weights=False)
        return self.head(self.norm(pooled[:, 0]))

    def forward(self, image=None, audio=None, present=None) -> torch.Tensor:
        out = self.logits(image, audio, present)
        if self.logit_shift.numel() and not self.training:
            out = out - self.logit_shift.to(out.dtype)
        return out / self.temperature

    def branches(self) -> tuple[Recognizer, Recognizer]:
        return self.image, self.audio


def branch_config(cfg: RunConfig, modality: str) -> RunConfig:
    """The run's settings as a single-modality branch sees them: its own registered model and that model's
    tuned defaults (model.kwargs of the run are for the fused model, not a branch)."""
    name = cfg.fusion.image_model if modality == "image" else cfg.fusion.audio_model
    spec = get_spec(name)
    if spec.modality != modality or spec.task != "classify":
        raise ConfigError(f"fusion.{modality}_model={name} is a {spec.modality} {spec.task} model; pick one from "
                          f"`seehear models --modality {modality} --task classify`")
    return dataclasses.replace(cfg, modality=modality, model=ModelConfig(name=name, kwargs=dict(spec.defaults)))


def build_fusion(cfg: RunConfig, labels: list[str], norm_stats: dict | None = None) -> FusionRecognizer:
    f = cfg.fusion
    if f.embed_dim < 2:
        raise ConfigError(f"fusion.embed_dim must be at least 2, got {f.embed_dim}")
    dims = [str(i) for i in range(f.embed_dim)]  # a branch's "classes" are its embedding's dimensions
    image = build_recognizer(branch_config(cfg, "image"), dims, "image", norm_stats)
    audio = build_recognizer(branch_config(cfg, "audio"), dims, "audio")
    return FusionRecognizer(image, audio, labels, f.mode, f.embed_dim, f.hidden)

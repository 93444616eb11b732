"""Self-supervised speech pretraining step: BEST-RQ (Chiu et al. 2022, "Self-supervised learning with random-projection
quantizer for speech recognition"), the wav2vec 2.0 idea (mask the input, predict what was there) with targets that
cost nothing to learn.

Targets: the normalised log-mel frames, stacked at the encoder's output frame rate (frame_factor input frames per
output frame), projected by a frozen random matrix and matched (cosine) to a frozen random unit-norm codebook; the
index of the nearest entry is each output frame's class. Both are drawn from the run's seed and saved with the run
(bestrq.safetensors), so the targets can be made again exactly.

Masking: spans of ~pretrain.mask_frames input frames (whole output frames) covering ~pretrain.mask_prob of each
recording's valid frames are replaced with N(0, noise_std) noise. The CTC model's encoder reads the masked input;
its output layer (the `head` a transcription run later replaces) scores the codebook entries:
    masked:       logits over the K codes, cross-entropy on the masked frames only;
    contrastive:  the head gives a codebook-space vector; cosine against the codebook / temperature, InfoNCE with
                  the codes of the same recording's other frames as the negatives (wav2vec 2.0's in-utterance
                  distractors), on the masked frames only.
Frames past a recording's end are never masked, never targets and never in the loss.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.data.decode import pcm_to_float
from seehear.engine.base_module import TrainModule
from seehear.engine.checkpoint import load_weights, save_weights
from seehear.models.asr.common import pad_mask

QUANTIZER_FILE = "bestrq.safetensors"
METHODS = ("masked", "contrastive")


class RandomQuantizer(nn.Module):
    """Frozen random projection [in_dim, dim] (Xavier-normal) and unit-norm codebook [K, dim], from `seed`."""

    def __init__(self, in_dim: int, codebook_size: int, codebook_dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed) * 7919 + 11)  # not the model's stream: same seed, other numbers
        proj = torch.randn(in_dim, codebook_dim, generator=g) * math.sqrt(2.0 / (in_dim + codebook_dim))
        self.register_buffer("projection", proj)
        self.register_buffer("codebook", F.normalize(torch.randn(codebook_size, codebook_dim, generator=g), dim=1))

    @property
    def size(self) -> int:
        return self.codebook.shape[0]

    @torch.no_grad()
    def targets(self, feats: torch.Tensor, frames: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [B, F, T] (normalised), frames [B] valid input frames -> (codes [B, T'], valid output frames [B]),
        T' = ceil(T / factor) as the encoders' subsampling gives. Padding is zeroed first: it cannot move a code."""
        b, f, t = feats.shape
        x = feats.float() * (~pad_mask(frames, t))[:, None, :].float()
        x = F.pad(x, (0, (-t) % factor))
        stacked = x.transpose(1, 2).reshape(b, -1, factor * f)  # [B, T', factor * F], frame-major like the paper
        z = F.normalize(stacked @ self.projection.to(x.device), dim=-1)
        codes = (z @ self.codebook.to(x.device).T).argmax(-1)
        return codes, (frames + factor - 1) // factor

    def save(self, path: Path) -> None:
        save_weights({"projection": self.projection, "codebook": self.codebook}, path)

    def load(self, path: Path) -> "RandomQuantizer":
        state = load_weights(path)
        self.projection.copy_(state["projection"])
        self.codebook.copy_(state["codebook"])
        return self


def span_mask(lengths: torch.Tensor, t: int, prob: float, span: int, generator: torch.Generator) -> torch.Tensor:
    """[B, t] bool: random spans of `span` frames within each row's first lengths[b] frames, added until they
    cover round(prob * length) frames (at least one); nothing past a row's length."""
    out = torch.zeros(len(lengths), t, dtype=torch.bool)
    for b, n in enumerate(lengths.tolist()):
        n = min(int(n), t)
        if n <= 0:
            continue
        want, w = max(1, round(prob * n)), min(span, n)
        for _ in range(4 * (want // w + 1)):  # bounded: overlapping spans add less
            if int(out[b].sum()) >= want:
                break
            s = int(torch.randint(0, n - w + 1, (1,), generator=generator))
            out[b, s:s + w] = True
    return out


def mask_inputs(feats: torch.Tensor, mask_out: torch.Tensor, frames: torch.Tensor, factor: int, noise_std: float,
                generator: torch.Generator) -> torch.Tensor:
    """feats [B, 1, F, T]: the input frames under the masked output frames (and within each recording) replaced
    with N(0, noise_std) noise; the noise is drawn for the whole tensor, so it does not depend on the values."""
    t = feats.shape[-1]
    per_input = mask_out.repeat_interleave(factor, dim=1)[:, :t]
    per_input = F.pad(per_input, (0, t - per_input.shape[1])) & ~pad_mask(frames.cpu(), t)
    noise = torch.randn(feats.shape, generator=generator) * noise_std
    m = per_input.to(feats.device)[:, None, None, :]
    return torch.where(m, noise.to(feats.device, feats.dtype), feats)


def code_scores(out: torch.Tensor, quantizer: RandomQuantizer, method: str, temperature: float) -> torch.Tensor:
    """The encoder head's output [B, T', D] as scores over the K codes [B, T', K]."""
    if method == "masked":
        return out.float()
    return F.normalize(out.float(), dim=-1) @ quantizer.codebook.to(out.device).T / temperature


def ssl_loss(scores: torch.Tensor, codes: torch.Tensor, selected: torch.Tensor, valid: torch.Tensor,
             method: str) -> tuple[torch.Tensor, int, int]:
    """(loss, correct, count) over the selected (masked, valid) frames. contrastive: only codes that occur among
    the recording's valid frames compete (its own is always among them). Correct = top code over all K."""
    sel = selected & valid
    count = int(sel.sum())
    if count == 0:
        return scores.sum() * 0.0, 0, 0
    if method == "contrastive":
        present = torch.zeros(scores.shape[0], scores.shape[-1], dtype=torch.bool, device=scores.device)
        present.scatter_(1, torch.where(valid, codes, codes[:, :1]), True)  # padding repeats a valid code
        logits = scores.masked_fill(~present[:, None, :], float("-inf"))[sel]
    else:
        logits = scores[sel]
    loss = F.cross_entropy(logits, codes[sel])
    correct = int((scores[sel].argmax(-1) == codes[sel]).sum())
    return loss, correct, count


def ssl_forward(model, quantizer: RandomQuantizer, wave: torch.Tensor, lens: torch.Tensor, p, generator):
    """One batch of raw waves: (loss, correct, count, targets of the selected frames). `p`: cfg.pretrain."""
    feats, frames = model.features(wave, lens)
    factor = int(getattr(model.acoustic, "frame_factor", 4))
    codes, n_out = quantizer.targets(feats[:, 0], frames, factor)
    span = max(1, round(p.mask_frames / factor))
    mask_out = span_mask(n_out.cpu(), codes.shape[1], p.mask_prob, span, generator)
    return masked_loss(model.acoustic, quantizer, feats, frames, codes, n_out, mask_out, p, generator)


def masked_loss(acoustic, quantizer, feats, frames, codes, n_out, mask_out, p, generator):
    factor = int(getattr(acoustic, "frame_factor", 4))
    x = mask_inputs(feats, mask_out, frames, factor, p.noise_std, generator)
    out, _ = acoustic(x, frames)
    t = min(out.shape[1], codes.shape[1])
    out, codes, mask_out = out[:, :t], codes[:, :t], mask_out[:, :t].to(out.device)
    valid = ~pad_mask(n_out.to(out.device), t)
    scores = code_scores(out, quantizer, p.method, p.temperature)
    loss, correct, count = ssl_loss(scores, codes, mask_out, valid, p.method)
    return loss, correct, count, codes[mask_out & valid]


class BestRQModule(TrainModule):
    def __init__(self, model, cfg: RunConfig, steps_per_epoch: int, quantizer: RandomQuantizer):
        super().__init__(model, cfg, steps_per_epoch)
        self.quantizer = quantizer
        self._gen = torch.Generator().manual_seed(cfg.train.seed * 31 + 5)
        self._val: list[int] = [0, 0]
        self.val_acc: list[float] = []

    def training_step(self, batch, _):
        self.start_step()
        x, lens = batch[0], batch[1]
        with self.data_time():
            x = pcm_to_float(x)
        loss, correct, count, _ = ssl_forward(self.model, self.quantizer, x, lens, self.cfg.pretrain, self._gen)
        n = len(lens)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        self.log("train_acc", correct / max(1, count), prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self):
        self._val = [0, 0]
        self._val_gen = torch.Generator().manual_seed(12345)  # the same masks every epoch: comparable numbers

    def validation_step(self, batch, _):
        x, lens = pcm_to_float(batch[0]), batch[1]
        loss, correct, count, _ = ssl_forward(self.model, self.quantizer, x, lens, self.cfg.pretrain, self._val_gen)
        self._val[0] += correct
        self._val[1] += count
        self.log("val_loss", loss, prog_bar=True, batch_size=len(lens))

    def on_validation_epoch_end(self):
        acc = self._val[0] / max(1, self._val[1])
        self.val_acc.append(round(acc, 4))
        self.log("val_acc", acc, prog_bar=True)


@torch.no_grad()
def masked_accuracy(model, quantizer: RandomQuantizer, batches, p, seed: int = 12345) -> dict:
    """Masked-prediction accuracy on held-out batches (fixed masks from `seed`), with what it should beat: chance
    (1 / K) and always answering the most frequent code among those frames."""
    model.eval()
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    correct = count = 0
    losses, seen = [], []
    for batch in batches:
        x, lens = pcm_to_float(batch[0]).to(dev), batch[1].to(dev)
        loss, c, n, tg = ssl_forward(model, quantizer, x, lens, p, g)
        correct, count = correct + c, count + n
        losses.append(float(loss) * n)
        seen.append(tg.cpu())
    if not count:
        return {"masked_accuracy": float("nan"), "masked_frames": 0}
    seen_codes = torch.cat(seen)
    majority = float(torch.bincount(seen_codes).max()) / len(seen_codes)
    return {"masked_accuracy": round(correct / count, 4), "chance": round(1 / quantizer.size, 6),
            "majority_code_accuracy": round(majority, 4), "loss": round(sum(losses) / count, 4),
            "masked_frames": count, "codes_seen": int(len(torch.unique(seen_codes)))}

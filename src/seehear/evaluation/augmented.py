"""What the model was trained on: a grid of augmented training examples (augmented.png; for audio, their log-mel
spectrograms; for image sequences, each clip's frames side by side) and, for audio, a couple of augmented clips (augmented_1.wav ...), written into the run folder at the
end of training so that the report shows them. The batch goes through the training augmentation of the run's
settings (features/augment.py), with mixup / CutMix when they are on, from a fixed seed.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from seehear.atomic import atomic_write
from seehear.config import RunConfig
from seehear.data.decode import pcm_to_float
from seehear.features.augment import augment_images, augment_sequences, augment_waves, cutmix, mixup

COLUMNS = 8  # examples per row; the first row shows them as stored, the next ones augmented
AUGMENTED_ROWS = 3
WAV_CLIPS = 2


def _pick(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n training examples spread over the classes (round robin), so that rare classes are shown too."""
    g = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
    by_class = [idx[torch.randperm(len(idx), generator=g)] for idx in by_class]
    out, i = [], 0
    while len(out) < min(n, len(y)):
        for idx in by_class:
            if i < len(idx) and len(out) < n:
                out.append(int(idx[i]))
        i += 1
    return torch.tensor(out, dtype=torch.long)


def _mixed(x: torch.Tensor, y: torch.Tensor, cfg: RunConfig, k: int, g: torch.Generator):
    """(x, one-hot or mixed targets) as the training step mixes them."""
    onehot = torch.nn.functional.one_hot(y, k).float()
    a = cfg.augment
    if a.cutmix > 0 and x.dim() == 4:
        return cutmix(x, onehot, a.cutmix, g)
    if a.mixup > 0:
        return mixup(x, onehot, a.mixup, g)
    return x, onehot


def _caption(target: torch.Tensor, labels: list[str]) -> str:
    top = torch.argsort(target, descending=True)[:2]
    if float(target[top[1]]) < 0.05:
        return labels[int(top[0])]
    return " / ".join(f"{labels[int(c)]} {float(target[c]):.0%}" for c in top)


def write_augmented_examples(x: torch.Tensor, y: torch.Tensor, labels: list[str], cfg: RunConfig, modality: str,
                             out: str | Path) -> list[Path]:
    """Write augmented.png (and for audio augmented_*.wav) into `out`; returns the paths written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    if len(y) == 0:
        return []
    idx = _pick(y, COLUMNS, cfg.train.seed)
    xs, ys = x[idx], y[idx]
    g = torch.Generator().manual_seed(cfg.train.seed * 7 + 3)
    rows = [(xs if modality != "audio" else pcm_to_float(xs), torch.nn.functional.one_hot(ys, len(labels)).float())]
    warps = [None]  # audio with augment.vtlp: each augmented clip's filterbank warp, as the Recognizer draws it
    for _ in range(AUGMENTED_ROWS):
        if modality == "image":
            aug = augment_images(xs, cfg.augment, g)
        elif modality == "frames":  # image sequences: one draw per clip
            aug = augment_sequences(xs, cfg.augment, g)
        else:
            aug = augment_waves(pcm_to_float(xs), cfg.augment, cfg.audio.sample_rate, g)
        rows.append(_mixed(aug, ys, cfg, len(labels), g))
        if modality == "audio" and cfg.augment.vtlp:
            from seehear.features.vtlp import VTLP, check_range

            vtlp = VTLP(*check_range(cfg.augment.vtlp))
            vtlp.generator = g
            warps.append(vtlp.factors(len(idx), "cpu"))
        else:
            warps.append(None)

    n = len(idx)
    fig = Figure(figsize=(1.6 * n * (2 if modality == "frames" else 1), 1.8 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(rows), n, squeeze=False))
    spec = None
    if modality == "audio":
        from seehear.features.audio import build_audio_frontend

        spec = build_audio_frontend(cfg.audio).eval()
    for r, (batch, target) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if modality in ("image", "frames"):
                one = batch[c] if modality == "image" else batch[c].permute(1, 2, 0, 3).flatten(2)  # frames in a row
                img = one.float().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                          vmin=0, vmax=255, interpolation="nearest")
            else:
                w = warps[r][c:c + 1] if warps[r] is not None else None
                with torch.no_grad():
                    m = spec(batch[c:c + 1].float(), warp=w)[0, 0].numpy()
                ax.imshow(m, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(("" if r else "original: ") + _caption(target[c], labels), fontsize=7)
    fig.suptitle("Training examples: as stored (top row) and as the model saw them (augmented)", fontsize=9)
    written = [atomic_write(out / "augmented.png", lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))]
    if modality == "audio":
        import soundfile as sf

        for i in range(min(WAV_CLIPS, n)):
            wave = rows[1][0][i].float().clamp(-1, 1).numpy()
            buf = io.BytesIO()
            sf.write(buf, wave, cfg.audio.sample_rate, format="WAV", subtype="PCM_16")
            written.append(atomic_write(out / f"augmented_{i + 1}.wav", lambda tmp: Path(tmp).write_bytes(
                buf.getvalue())))
    return written


__all__ = ["write_augmented_examples"]

"""The trust section's pictures, drawn like seehear.evaluation.plots (matplotlib's Agg canvas, no pyplot state):
reliability before/after, accuracy under corruption and attack, attribution overlays, embedding maps, and
thumbnails of suspected label errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seehear.evaluation.metrics import ECE_BINS, calibration_bins, expected_calibration_error

DPI = 110


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _save(fig: Figure, path) -> Path:
    """Written to a temporary name and renamed: a reader never sees half a PNG."""
    from seehear.engine.checkpoint import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    return path


def _reliability(ax, probs, y, title):
    conf, correct = probs.max(1), (probs.argmax(1) == y).astype(np.float64)
    bins = [b for b in calibration_bins(conf, correct, ECE_BINS) if b["count"]]
    w = 1.0 / ECE_BINS
    ax.bar([b["lo"] + w / 2 for b in bins], [b["accuracy"] for b in bins], width=w * 0.95, color="#4c72b0",
           label="accuracy")
    ax.plot([b["lo"] + w / 2 for b in bins], [b["confidence"] for b in bins], "o", color="#c44e52", ms=4,
            label="mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"{title} — ECE {expected_calibration_error(probs, y):.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def plot_reliability_pair(before, after, y, temperature: float, path) -> Path:
    fig, ax = _figure(9, 4, 1, 2)
    _reliability(ax[0, 0], np.asarray(before, np.float64), np.asarray(y), "before")
    _reliability(ax[0, 1], np.asarray(after, np.float64), np.asarray(y), f"after (T = {temperature:.2f})")
    return _save(fig, path)


def plot_robustness(r: dict, path) -> Path:
    """Accuracy against severity, one line per corruption, clean accuracy dashed."""
    fig, ax = _figure(7, 4)
    a = ax[0, 0]
    for name, accs in r["per_corruption"].items():
        a.plot(range(1, len(accs) + 1), accs, marker="o", ms=3, label=name.replace("_", " "))
    a.axhline(r["clean_accuracy"], color="k", ls="--", lw=1, label="clean")
    a.set(xlabel="severity", ylabel="accuracy", ylim=(0, 1.02))
    a.set_title(f"Corruptions — mean accuracy {r['mean_corruption_accuracy']:.1%} "
                f"(clean {r['clean_accuracy']:.1%})", fontsize=10)
    a.legend(fontsize=7, ncol=2)
    a.grid(alpha=0.3)
    return _save(fig, path)


def plot_adversarial(r: dict, path) -> Path:
    fig, ax = _figure(5.5, 3.6)
    a = ax[0, 0]
    unit = r["unit"]
    for attack in ("fgsm", "pgd"):
        rows = [row for row in r["results"] if row["attack"] == attack]
        a.plot([str(row[unit]) for row in rows], [row["accuracy"] for row in rows], marker="o", label=attack.upper())
    a.axhline(r["clean_accuracy"], color="k", ls="--", lw=1, label="clean")
    a.set(ylim=(0, 1.02), ylabel="accuracy",
          xlabel="ε (pixel levels of 255)" if unit == "eps_pixels" else "SNR of the perturbation (dB)")
    a.set_title("Adversarial accuracy (L∞)", fontsize=10)
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    return _save(fig, path)


def _show_input(ax, item: np.ndarray, modality: str):
    if modality == "image":  # uint8 [C, H, W]
        img = item.transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  interpolation="nearest")
    else:  # features [F, T]
        ax.imshow(item, origin="lower", aspect="auto", cmap="gray_r")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_overlays(items, maps, titles, modality: str, path, cols: int = 4) -> Path:
    """A grid: each input with its attribution map over it (jet, half transparent)."""
    n = len(items)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    wide = modality == "audio"
    fig, ax = _figure(cols * (3.4 if wide else 2.4), rows * 2.6, rows, cols)
    for k in range(rows * cols):
        a = ax[k // cols, k % cols]
        if k >= n:
            a.axis("off")
            continue
        _show_input(a, items[k], modality)
        m = maps[k]
        extent = (-0.5, m.shape[1] - 0.5, -0.5, m.shape[0] - 0.5) if wide else None
        a.imshow(m / (m.max() + 1e-12), cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear",
                 origin="lower" if wide else "upper", aspect="auto" if wide else None, extent=extent)
        a.set_title(titles[k], fontsize=7)
    return _save(fig, path)


def plot_embedding(points: np.ndarray, y: np.ndarray, correct: np.ndarray, labels, title: str, path) -> Path:
    """Two panels over the same 2-D points: coloured by true class, and by right/wrong."""
    fig, ax = _figure(10, 4.5, 1, 2)
    a, b = ax[0, 0], ax[0, 1]
    cmap = "tab10" if len(labels) <= 10 else "tab20"
    sc = a.scatter(points[:, 0], points[:, 1], c=y, cmap=cmap, s=8, vmin=0, vmax=max(1, len(labels) - 1))
    if len(labels) <= 20:
        handles = [a.scatter([], [], color=sc.cmap(sc.norm(i)), s=12, label=str(lab)[:20])
                   for i, lab in enumerate(labels)]
        a.legend(handles=handles, fontsize=6, loc="best", markerscale=1.2)
    a.set_title(f"{title} — by class", fontsize=10)
    b.scatter(points[correct, 0], points[correct, 1], s=8, c="#9aa7b1", label="right")
    b.scatter(points[~correct, 0], points[~correct, 1], s=14, c="#c44e52", marker="x", label="wrong")
    b.legend(fontsize=8)
    b.set_title(f"{title} — by correctness", fontsize=10)
    for q in (a, b):
        q.set_xticks([])
        q.set_yticks([])
    return _save(fig, path)


def plot_thumbnails(items, titles, modality: str, path, cols: int = 6) -> Path:
    n = len(items)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, ax = _figure(cols * (2.6 if modality == "audio" else 1.8), rows * 2.1, rows, cols)
    for k in range(rows * cols):
        a = ax[k // cols, k % cols]
        if k >= n:
            a.axis("off")
            continue
        _show_input(a, items[k], modality)
        a.set_title(titles[k], fontsize=6)
    return _save(fig, path)

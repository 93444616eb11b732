"""PNG plots for a run: confusion matrix, training curves, reliability diagram.

Figures are built on matplotlib's Agg canvas directly (no pyplot): nothing opens a window, nothing needs a
display, and no global pyplot state or figure registry leaks between calls (safe in threads and notebooks).
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from seehear.evaluation.metrics import ECE_BINS, calibration_bins, expected_calibration_error

DPI = 110


def _figure(width: float, height: float, ncols: int = 1):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)  # attaches the Agg canvas: the backend is fixed here, whatever matplotlib's default
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig: Figure, path) -> Path:
    from seehear.atomic import atomic_write

    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


def plot_confusion(metrics: dict, path) -> Path:
    """Row-normalised confusion matrix (each row: where that true class went), counts annotated when K <= 20."""
    counts = np.asarray(metrics["confusion"], dtype=np.int64)
    k = counts.shape[0]
    labels = list(metrics.get("labels") or metrics.get("per_class", {}).keys()) or [str(i) for i in range(k)]
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)

    # grow the canvas with K so 50 classes still get legible ticks; shrink the font only past ~20
    side = float(np.clip(0.32 * k + 2.5, 4.5, 20.0))
    fontsize = 9 if k <= 20 else (8 if k <= 60 else 6)
    fig, ax = _figure(side + 1.2, side)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ticks = np.arange(k)
    short = [lab if len(lab) <= 24 else lab[:23] + "…" for lab in labels]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(short, rotation=90 if k > 8 else 45, ha="center" if k > 8 else "right",
                       fontsize=fontsize)
    ax.set_yticklabels(short, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=fontsize,
                            color="white" if norm[i, j] > 0.55 else "black")
    title = "Confusion matrix (row-normalised)"
    if "accuracy" in metrics:
        title += f" — accuracy {metrics['accuracy']:.1%}"
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _read_metrics_csv(csv_path) -> tuple[str, dict[str, dict[float, list[float]]]]:
    """Columns of a CSVLogger file as {column: {x: [values]}}, skipping blanks/NaN; x is epoch if logged."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = list(rows[0].keys()) if rows else []
    xname = "epoch" if "epoch" in cols else ("step" if "step" in cols else "row")
    series: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for i, row in enumerate(rows):
        x = _num(row.get(xname)) if xname != "row" else float(i)
        if x is None:
            continue
        for col, val in row.items():
            if col in ("epoch", "step") or col is None:
                continue
            v = _num(val)
            if v is not None:
                series[col][x].append(v)
    return xname, series


def _num(s) -> float | None:
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _pick(series: dict, word: str) -> list[str]:
    """Columns whose name contains `word`; a *_step column is dropped when its *_epoch twin exists."""
    names = [c for c in series if word in c.lower()]
    return sorted(c for c in names if not (c.endswith("_step") and c[: -len("_step")] + "_epoch" in names))


def plot_curves(csv_path, path) -> Path:
    """Loss and accuracy vs epoch from a Lightning CSVLogger metrics.csv (sparse rows, any subset of columns)."""
    xname, series = _read_metrics_csv(csv_path)
    fig, (ax_loss, ax_acc) = _figure(10, 3.8, ncols=2)
    for ax, word, title in ((ax_loss, "loss", "Loss"), (ax_acc, "acc", "Accuracy")):
        cols = _pick(series, word)
        for col in cols:
            # a metric logged per step appears many times per epoch: plot its epoch mean
            xs = sorted(series[col])
            ys = [float(np.mean(series[col][x])) for x in xs]
            ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=col)
        if cols:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {title.lower()} logged", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xname)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 0.4" ticks
        ax.grid(alpha=0.3)
    if _pick(series, "acc"):
        ax_acc.set_ylim(bottom=min(0.0, ax_acc.get_ylim()[0]))
    return _save(fig, path)


def plot_reliability(probs, y_true, path, n_bins: int = ECE_BINS) -> Path:
    """Reliability diagram: accuracy vs top-1 confidence per bin (on the diagonal = calibrated)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true).reshape(-1)
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    bins = calibration_bins(conf, correct, n_bins)
    width = 1.0 / n_bins
    centers = [b["lo"] + width / 2 for b in bins]
    fig, (ax, ax_hist) = _figure(9, 4, ncols=2)
    used = [b for b in bins if b["count"]]
    x_used = [b["lo"] + width / 2 for b in used]
    acc, conf_mean = [b["accuracy"] for b in used], [b["confidence"] for b in used]
    ax.bar(x_used, acc, width=width * 0.95, color="#4c72b0", label="accuracy")
    # the gap as a hatched outline from accuracy to mean confidence: visible above or below without mixing colours
    ax.bar(x_used, [abs(c - a) for a, c in zip(acc, conf_mean)], bottom=[min(a, c) for a, c in zip(acc, conf_mean)],
           width=width * 0.95, facecolor="none", edgecolor="#c44e52", hatch="//", linewidth=1,
           label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability — ECE {expected_calibration_error(p, y, n_bins):.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax_hist.bar(centers, [b["count"] for b in bins], width=width * 0.95, color="#8c8c8c")
    ax_hist.set_xlim(0, 1)
    ax_hist.set_xlabel("confidence")
    ax_hist.set_ylabel("examples")
    ax_hist.set_title("Confidence histogram", fontsize=10)
    return _save(fig, path)

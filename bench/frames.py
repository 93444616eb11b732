"""Image sequences: which way a handwritten digit moves. Each clip is a real MNIST test digit (../shared/data/
mnist-test) moving in one of 8 directions (label = direction) across a 48x48 canvas over 8 frames, written as an
animated GIF; seehear reads them as frames (modality auto-detected) at 32x32. Train and test clips come from
different source digits (a manifest with a split column), so no test digit was seen in training. Every frame's
position range is the same for a direction and its opposite (the same frames played backwards), so only order tells
them apart: the recipe's CNN+LSTM (cnn_lstm_frames) beside frames_mean, the per-frame CNN averaged over time, which
cannot see order, trained with the same settings and budget in the same run.

    .venv/bin/python bench/frames.py                   # → bench/results/frames.json
    .venv/bin/python bench/frames.py --limit small     # smoke, < 2 min → /tmp/seehear-bench/results/frames-small.json
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from common import DATA, WORK, Bench, need

# ---------------------------------------------------------------------------------------------- settings
IMAGES = DATA / "mnist-test" / "t10k-images-idx3-ubyte.gz"
DIRECTIONS = {"E": (1, 0), "NE": (1, -1), "N": (0, -1), "NW": (-1, -1), "W": (-1, 0), "SW": (-1, 1), "S": (0, 1),
              "SE": (1, 1)}
CANVAS, FRAMES, STEP = 48, 8, 2.5  # pixels; the digit travels STEP * (FRAMES - 1) = 17.5 of the 20 it has room for
FULL = {"train": 6000, "test": 2000, "budget": 150}  # source digits per split, training seconds per model
SMALL = {"train": 400, "test": 100, "budget": 15}
MODELS = ("cnn_lstm_frames", "frames_mean")
OVERRIDES = ["data.split_column=split", "image.size=32", "image.channels=1", "train.threads=2"]
GOAL = 0.98
# -----------------------------------------------------------------------------------------------------------


def clip(digit: np.ndarray, direction: str, rng) -> list[np.ndarray]:
    """FRAMES canvases with the digit moving `direction`, from a start drawn so that it stays on the canvas."""
    dx, dy = DIRECTIONS[direction]
    room, travel = CANVAS - digit.shape[0], STEP * (FRAMES - 1)
    x0 = rng.uniform(0, room - travel) + (travel if dx < 0 else 0) if dx else rng.uniform(0, room)
    y0 = rng.uniform(0, room - travel) + (travel if dy < 0 else 0) if dy else rng.uniform(0, room)
    out = []
    for t in range(FRAMES):
        c = np.zeros((CANVAS, CANVAS), np.uint8)
        x, y = round(x0 + dx * STEP * t), round(y0 + dy * STEP * t)
        c[y:y + digit.shape[0], x:x + digit.shape[1]] = digit
        out.append(c)
    return out


def write_clips(n_train: int, n_test: int, root: Path, seed: int = 0) -> Path:
    """Animated GIFs and manifest.csv (path,label,split): the first n_train source digits train, the last n_test
    test (a digit is in one split only)."""
    from PIL import Image

    from seehear.data.decode import read_idx

    digits = read_idx(need(IMAGES))
    rng = np.random.default_rng(seed)
    names = list(DIRECTIONS)
    rows = []
    sources = [("train", i) for i in range(n_train)] + [("test", len(digits) - 1 - i) for i in range(n_test)]
    for split, i in sources:
        d = names[int(rng.integers(len(names)))]
        f = root / d / f"{split}_{i:05d}.gif"
        if not f.is_file():
            f.parent.mkdir(parents=True, exist_ok=True)
            ims = [Image.fromarray(a, "L") for a in clip(digits[i], d, rng)]
            ims[0].save(f, save_all=True, append_images=ims[1:], duration=80, loop=0)
        else:
            clip(digits[i], d, rng)  # keep the random stream as if written
        rows.append({"path": str(f), "label": d, "split": split})
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small", "full"], default="full",
                    help="small: 400/100 source digits, 15 s per model (smoke; written under /tmp)")
    ap.add_argument("--budget", type=float, help="training seconds per model")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated frames models")
    a = ap.parse_args(argv)
    import seehear

    small = a.limit == "small"
    size = SMALL if small else FULL
    budget = a.budget or size["budget"]
    name = "frames" + ("-small" if small else "")
    with Bench(name, results=WORK / "results" if small else None) as b:
        t = time.time()
        data = write_clips(size["train"], size["test"], WORK / f"frames-mnist-{size['train']}-{size['test']}")
        b.figures.update({"data": str(data), "limit": a.limit, "canvas": CANVAS, "frames": FRAMES, "step_px": STEP,
                          "source_digits": {"train": size["train"], "test": size["test"]},
                          "write_seconds": round(time.time() - t, 1), "budget_seconds": budget, "models": {}})
        for m in a.models.split(","):
            t = time.time()
            r = seehear.train(str(data), WORK / "runs" / f"{name}-{m}", model=m, time_budget=budget,
                              overrides=OVERRIDES + (["train.threads=1", "data.workers=1"] if small else []),
                              overwrite=True, progress=False)
            tr = r.meta["train"]
            b.figures["models"][m] = {"accuracy": round(r.metrics["accuracy"], 4), "modality": r.meta["modality"],
                                      "epochs": tr["epochs_run"], "train_seconds": tr["wall_seconds"],
                                      "run_seconds": round(time.time() - t, 1), "params": r.meta["model"]["params"],
                                      "test_clips": r.meta["data"]["counts"].get("test"),
                                      "data_wait_share": tr.get("data_wait_share")}
        figs = b.figures["models"]
        if "cnn_lstm_frames" in figs:
            b.goal("accuracy_cnn_lstm", GOAL, figs["cnn_lstm_frames"]["accuracy"])
        b.notes.append("frames_mean sees the same frames without their order: a direction and its opposite are the "
                       "same frames played backwards, so it can at best tell the axis (chance 1/8)")
        if small:
            b.notes.append("--limit small: a tiny run; checks the plumbing, not the goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())

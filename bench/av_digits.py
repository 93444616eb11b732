"""Audio-visual digits: MNIST test images (CC BY-SA 3.0, LeCun et al.) paired by digit with FSDD recordings (CC BY-SA
4.0, Jakobovski et al.), trained with `--modality audio-image` (models/fusion.py), FSDD speakers held out.

Pairs: every FSDD recording gets its own MNIST image of the same digit. Speakers TEST_SPEAKERS are the test set,
the other four train (validation carved from them); the MNIST test images are split too (the first half pairs with
training recordings, the second half with test recordings), so no image and no voice is seen in both.

Measured on the test pairs with the trained run: accuracy fused, image alone and audio alone (the other input
marked absent), then under an image-noise sweep (Gaussian pixel noise, sigma in levels of 255) and an audio SNR sweep
(white noise at SNR dB of each clip), each applied to one input while the other stays clean.
Goals: `fused_accuracy_clean` above the better single input; `fused_accuracy_one_degraded` (the lower of: image at
its worst severity, audio at its worst) >= 0.95.

    .venv/bin/python bench/av_digits.py                    # → bench/results/av-digits.json
    .venv/bin/python bench/av_digits.py --limit small    # smoke (~1-2 min) → /tmp/seehear-bench/results/
    .venv/bin/python bench/av_digits.py --set fusion.mode=late --budget 120            (dev runs)
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import DATA, WORK, Bench, learning_curve, need

MNIST = DATA / "mnist-test"
RECORDINGS = DATA / "fsdd" / "recordings"
NAME = re.compile(r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav$")
TEST_SPEAKERS = ("nicolas", "theo")
BUDGET = 240  # seconds of training
# The audio branch gets the FSDD-tuned front end of the audio-words recipe (13 MFCCs with utterance CMVN, 4 kHz:
# unseen voices); everything else is the audio-image recipe.
OVERRIDES = ["data.split_column=split", "audio.features=mfcc", "audio.n_mfcc=13", "audio.f_max=4000.0",
             "train.threads=2"]
IMAGE_SIGMAS = [0, 32, 64, 128, 256]  # Gaussian pixel noise, levels of 255 (256: the digit is all but gone)
AUDIO_SNRS = [None, 20, 10, 0, -10]  # dB; None = clean
GOAL_ONE_DEGRADED = 0.95
WORK_DIR = WORK / "av-digits"


def build_pairs(limit: str | None) -> Path:
    """Write the MNIST images as PNGs and the pairs manifest (image, audio, label, speaker, split)."""
    from PIL import Image

    from seehear.data.decode import read_idx

    images = read_idx(need(MNIST / "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(need(MNIST / "t10k-labels-idx1-ubyte.gz")).astype(int)
    half = len(labels) // 2
    pools = {split: {d: [i for i in rng if labels[i] == d] for d in range(10)}
             for split, rng in (("train", range(half)), ("test", range(half, len(labels))))}
    recs = []
    for f in sorted(need(RECORDINGS).glob("*.wav")):
        m = NAME.match(f.name)
        if m and (limit != "small" or int(m["take"]) < 5):  # small: 5 takes per speaker and digit (300 pairs)
            recs.append((f, int(m["label"]), m["speaker"]))
    out = WORK_DIR / ("small" if limit else "full")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for f, d, spk in recs:
        split = "test" if spk in TEST_SPEAKERS else "train"
        i = pools[split][d].pop(0)
        png = out / "images" / f"{i:05d}_{d}.png"
        if not png.is_file():
            Image.fromarray(images[i]).save(png)
        rows.append({"image": str(png), "audio": str(f), "label": str(d), "speaker": spk, "split": split})
    manifest = out / "pairs.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


def degrade_images(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    if not sigma:
        return x
    g = torch.Generator().manual_seed(seed)
    return (x.float() + sigma * torch.randn(x.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)


def degrade_audio(x: torch.Tensor, snr_db: float | None, seed: int = 0) -> torch.Tensor:
    from seehear.data.decode import float_to_pcm, pcm_to_float

    if snr_db is None:
        return x
    w = pcm_to_float(x)
    g = torch.Generator().manual_seed(seed)
    power = w.pow(2).mean(1, keepdim=True).clamp_min(1e-10)
    noise = torch.randn(w.shape, generator=g) * (power / 10 ** (snr_db / 10)).sqrt()
    return float_to_pcm(w + noise)


def accuracy(model, image, audio, y) -> float:
    from seehear.engine.fusion import fusion_logits

    return round(float((fusion_logits(model, image, audio).argmax(1) == y).float().mean()), 4)


def measure(run_dir: Path, manifest: Path) -> dict:
    import json

    from seehear.data.pairs import decode_pairs, load_pairs
    from seehear.engine.run_folder import load_run

    loaded = load_run(run_dir)
    src = load_pairs(manifest)
    test_keys = set(json.loads((run_dir / "split.json").read_text())["test"])
    recs = [r for r in src.records if r.key in test_keys]
    d = decode_pairs(recs, loaded.cfg, progress=False)
    y = torch.tensor([loaded.labels.index(recs[i].label) for i in d.keep])
    m, xi, xa = loaded.model, d.image, d.audio
    out = {"test_pairs": len(y), "clean": {"fused": accuracy(m, xi, xa, y), "image_only": accuracy(m, xi, None, y),
                                           "audio_only": accuracy(m, None, xa, y)}}
    out["image_noise"] = [{"sigma": s, "fused": accuracy(m, degrade_images(xi, s), xa, y),
                           "image_only": accuracy(m, degrade_images(xi, s), None, y)} for s in IMAGE_SIGMAS]
    out["audio_snr"] = [{"snr_db": s, "fused": accuracy(m, xi, degrade_audio(xa, s), y),
                         "audio_only": accuracy(m, None, degrade_audio(xa, s), y)} for s in AUDIO_SNRS]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small"], help="small: 300 pairs, 6 epochs (a smoke run)")
    ap.add_argument("--budget", type=float, help=f"training seconds (default {BUDGET})")
    ap.add_argument("--set", action="append", default=[], help="extra seehear override key=value (dev)")
    args = ap.parse_args(argv)
    import seehear

    # small: a fixed number of epochs, not a time budget: on a busy shared machine 20 s can be 3 steps
    length = "train.epochs=6" if args.limit and not args.budget else f"train.time_budget={args.budget or BUDGET}"
    name = "av-digits" + ("-small" if args.limit else "")
    with Bench(name, results=WORK / "results" if args.limit else None) as b:  # a smoke run never replaces results
        manifest = build_pairs(args.limit)
        overrides = [*OVERRIDES, length, *args.set]
        b.figures["data"] = {"manifest": str(manifest), "test_speakers": list(TEST_SPEAKERS),
                             "credit": "MNIST (CC BY-SA 3.0, LeCun et al.) + FSDD (CC BY-SA 4.0, Jakobovski et al.)"}
        b.figures["seehear_overrides"] = overrides
        t0 = time.time()
        out = WORK_DIR / "runs" / name
        res = seehear.train(str(manifest), str(out), overrides=["modality=audio-image", *overrides],
                            overwrite=True, progress=False)
        b.figures["train"] = {k: res.meta["train"][k] for k in ("wall_seconds", "epochs_run", "steps")}
        b.figures["run_seconds"] = round(time.time() - t0, 1)
        b.figures["fusion"] = res.meta["config"]["fusion"]
        b.figures["learning_curve"] = learning_curve(out, "val_acc")
        r = measure(out, manifest)
        b.figures.update(r)
        print(r, file=sys.stderr, flush=True)
        clean = r["clean"]
        best_single = max(clean["image_only"], clean["audio_only"])
        # the target is the better single input's accuracy, and the goal is to be above it (not merely equal)
        b.goals["fused_accuracy_clean"] = {"target": best_single, "measured": clean["fused"],
                                           "met": clean["fused"] > best_single, "unit": ""}
        worst = min(r["image_noise"][-1]["fused"], r["audio_snr"][-1]["fused"])
        b.goal("fused_accuracy_one_degraded", GOAL_ONE_DEGRADED, worst)


if __name__ == "__main__":
    main()

"""Probe: the GAN's discriminator steps per generator step (model.kwargs.d_steps), side by side on CIFAR-10, each
trained the same seconds with the same seed through `seehear synthesize`, then scored by an existing CIFAR-10
classification run on 200 generated images per class (tasks/synthesize.evaluate_gan: Fréchet distance, precision,
recall, the classifier's accuracy on them) and by how much the samples of one class vary with the noise.

    .venv/bin/python bench/gan_probe.py --classifier RUN            # → bench/results/probes/gan-d-steps.json

RUN: a default-recipe CIFAR-10 run (e.g. bench/augment_cifar10.py's /tmp/seehear-bench/runs-augment/
augment-cifar10-none). Why it exists: with one discriminator step per generator step the 30-minute GAN of
bench/gan_cifar10.py collapsed each class to a single image (the discriminator's hinge loss stayed at 2.0).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from common import RESULTS, WORK, Bench
from cifar10 import EXTRACTED, extract


def _diversity(run: Path) -> float:
    """Mean over classes and pixels of the std across 100 noise draws, images in [-1, 1] (CIFAR-10's own: ~0.5)."""
    import torch

    from seehear.engine.synthetic import load_gan

    gan, _, _ = load_gan(run)
    k = len(gan.labels)
    x = gan.sample(torch.arange(k).repeat_interleave(100), torch.Generator().manual_seed(1))
    return round((x.float() / 127.5 - 1).view(k, 100, -1).std(1).mean().item(), 4)


def _losses(run: Path) -> list[dict]:
    with open(run / "logs" / "metrics.csv", newline="") as f:
        return [{k: round(float(v), 4) for k, v in row.items() if v} for row in csv.DictReader(f)]


def main(argv=None) -> int:
    import seehear
    from seehear.tasks.synthesize import evaluate_gan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classifier", required=True, help="a CIFAR-10 classification run that scores the samples")
    ap.add_argument("--budget", type=float, default=300, help="training seconds per setting")
    ap.add_argument("--d-steps", default="1,4", help="settings to compare")
    a = ap.parse_args(argv)
    extract()
    with Bench("gan-d-steps", results=RESULTS / "probes") as b:
        b.figures["budget_seconds"] = a.budget
        for k in (int(s) for s in a.d_steps.split(",")):
            r = seehear.train(EXTRACTED / "train", WORK / "runs-gan" / f"probe-d{k}", task="synthesize",
                              time_budget=a.budget, overwrite=True, progress=False,
                              overrides=[f"model.kwargs.d_steps={k}", "train.seed=0"])
            q = evaluate_gan(r.run_dir, a.classifier, per_class=200, progress=False)
            b.figures[f"d_steps_{k}"] = {
                "optimiser_steps": r.meta["train"].get("steps"),  # discriminator and generator steps
                "train_seconds": r.meta["train"].get("train_seconds"),
                "per_epoch": _losses(r.run_dir), "diversity": _diversity(r.run_dir),
                "gan_test_accuracy": round(q["gan_test_accuracy"], 4),
                "frechet": round(q["generated"]["frechet"], 2),
                "frechet_real_floor": round(q["real_held_out"]["frechet"], 2),
                "precision": q["generated"]["precision"], "recall": q["generated"]["recall"]}
        b.notes.append("one seed, a few minutes each: a check of the update rhythm, not of final quality; diversity "
                       "of the real CIFAR-10 images by the same measure is about 0.5")
    return 0


if __name__ == "__main__":
    sys.exit(main())

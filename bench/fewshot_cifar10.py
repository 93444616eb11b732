"""Few-shot CIFAR-10 (issue 13): an embedding trained on classes 0-4 (airplane, automobile, bird, cat, deer: their
25,000 training images), then 600 5-way 5-shot episodes over the test images of classes 5-9 (dog, frog, horse,
ship, truck), never seen in training.

Two embeddings in the same invocation, same data, seed and time budget: the default image recipe's plain
classifier and the same recipe with `train.episodic=true` (5-way episodes of 10 support + 10 query images per
class: larger than the 5 + 5 default, so a step's batch of 100 keeps the convolutions busy). Each is measured by
`seehear.tasks.fewshot.evaluate_fewshot` on the same 600 episodes (15 queries per class, nearest prototype by
cosine on centred embeddings), accuracy mean and 95% interval; 1-shot is reported beside it.

    .venv/bin/python bench/fewshot_cifar10.py                  # → bench/results/fewshot-cifar10.json
    SEEHEAR_BENCH_RESULTS=/tmp/fs .venv/bin/python bench/fewshot_cifar10.py --limit small   # plumbing, ~1 min
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from cifar10 import EXTRACTED, MARKER, extract
from common import WORK, Bench
from fewshot_fsdd import measure_embedding

BASE, NEW = range(0, 5), range(5, 10)  # class indices in sorted folder order (CIFAR-10's own order)
BUDGET_S = 300  # training seconds per embedding
WAYS, SHOTS, EPISODES, QUERIES = 5, (1, 5), 600, 15
GOAL = ("accuracy_5shot", 0.70)
COMMON = ["train.threads=2"]
EMBEDDINGS = {"plain": [],
              "episodic": ["train.episodic=true", "train.episode_shots=10", "train.episode_queries=10"]}
SMALL = {"train": 100, "test": 40, "budget": 10, "episodes": 50}  # --limit small: images per class


def folders(train_per_class: int | None, test_per_class: int | None):
    """(base training folder, new-class test folder) of symlinks into the extracted archive."""
    tag = "all" if train_per_class is None else f"{train_per_class}-{test_per_class}"
    out = WORK / f"fewshot-cifar10-{tag}"
    if not (out / MARKER).is_file():
        shutil.rmtree(out, ignore_errors=True)  # our own unfinished folder of links
        classes = sorted(d.name for d in (EXTRACTED / "train").iterdir() if d.is_dir())
        for split, which, n, part in (("train", BASE, train_per_class, "base"), ("test", NEW, test_per_class, "new")):
            for i in which:
                dst = out / part / classes[i]
                dst.mkdir(parents=True)
                for f in sorted((EXTRACTED / split / classes[i]).glob("*.jpg"))[:n]:
                    (dst / f.name).symlink_to(f)
        (out / MARKER).write_text("done\n")
    return out / "base", out / "new"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small"], help="small: a plumbing check (few images, seconds of training)")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="training seconds per embedding")
    ap.add_argument("--only", choices=sorted(EMBEDDINGS), action="append", help="train only this embedding (dev)")
    args = ap.parse_args(argv)
    small = args.limit == "small"
    extract()
    base, new = folders(SMALL["train"], SMALL["test"]) if small else folders(None, None)
    budget = SMALL["budget"] if small else args.budget
    episodes = SMALL["episodes"] if small else EPISODES
    with Bench("fewshot-cifar10" + ("-small" if small else ""), results=WORK / "results" if small else None) as b:
        b.figures.update({
            "data": {"base": sorted(d.name for d in base.iterdir()), "new": sorted(d.name for d in new.iterdir()),
                     "base_images": sum(1 for _ in base.rglob("*.jpg")),
                     "new_images": sum(1 for _ in new.rglob("*.jpg")), "credit": "CIFAR-10, Krizhevsky 2009"},
            "limit": args.limit, "ways": WAYS, "episodes": episodes, "queries": QUERIES,
            "train_budget_seconds": budget, "load_before": round(os.getloadavg()[0], 2), "embeddings": {}})
        for name, extra in EMBEDDINGS.items():
            if args.only and name not in args.only:
                continue
            print(f"== {name} embedding", file=sys.stderr, flush=True)
            got = measure_embedding(base, new, WORK / "runs" / f"fewshot-cifar10-{name}",
                                    [*COMMON, f"train.time_budget={budget}"], extra, episodes, WAYS, SHOTS, QUERIES)
            b.figures["embeddings"][name] = got
            print(name, got["fewshot"], file=sys.stderr, flush=True)
        got = b.figures["embeddings"]
        scored = "episodic" if "episodic" in got else next(iter(got))
        b.goal(GOAL[0], GOAL[1], got[scored]["fewshot"]["5"]["accuracy"])
        b.figures["goals_scored_on"] = scored
        b.notes.append("the goal is scored on the episodic embedding; the plain classifier's is beside it, on the "
                       "same episodes (seed 0)")
        if small:
            b.notes.append("--limit small: a plumbing check (100 images per class, seconds of training)")


if __name__ == "__main__":
    main()

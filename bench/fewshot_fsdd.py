"""Few-shot spoken digits (issue 13): an embedding trained on digits 0-4 spoken by four FSDD speakers, then 5-way
episodes over digits 5-9 spoken by the two other speakers (george and jackson, as bench/fsdd_connected.py holds
out): new words in new voices, from 1 or 5 examples of each.

Two embeddings trained in the same invocation, same data, seed and time budget: the default audio recipe's plain
classifier, and the same recipe with `train.episodic=true` (5-way 5-shot 5-query episodes, engine/episodic.py).
Each is measured by `seehear.tasks.fewshot.evaluate_fewshot`: 600 episodes (the same ones for both), 15 queries
per class, nearest prototype by cosine on centred embeddings; accuracy mean and 95% interval over episodes.

    .venv/bin/python bench/fewshot_fsdd.py                    # → bench/results/fewshot-fsdd.json
    SEEHEAR_BENCH_RESULTS=/tmp/fs .venv/bin/python bench/fewshot_fsdd.py --limit small   # plumbing, ~1 min
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from common import DATA, WORK, Bench, learning_curve, need
from peer import write_manifest

RECORDINGS = DATA / "fsdd" / "recordings"
NEW_SPEAKERS = ("george", "jackson")
BASE_DIGITS, NEW_DIGITS = set("01234"), set("56789")
TIME_BUDGET = 60  # seconds of training per embedding (the 1,000 base recordings; fsdd.py gives 3,000 100 s)
WAYS, SHOTS, EPISODES, QUERIES = 5, (1, 5), 600, 15
GOALS = {"1": ("accuracy_1shot", 0.85), "5": ("accuracy_5shot", 0.95)}
COMMON = [f"train.time_budget={TIME_BUDGET}", "train.threads=2", "data.split_column=split"]
EMBEDDINGS = {"plain": [], "episodic": ["train.episodic=true"]}
SMALL = {"takes": 12, "budget": 8, "episodes": 50}  # --limit small: 12 takes per speaker and digit
WORK_DIR = WORK / "fewshot-fsdd"


def rows(takes: int | None) -> list[dict]:
    from fsdd import recordings  # the file-name pattern and reading, as bench/fsdd.py has them

    return [r for r in recordings() if takes is None or r["take"] < takes]


def measure_embedding(base, new, out: Path, common: list[str], extra: list[str], episodes: int,
                      ways: int = WAYS, shots=SHOTS, queries: int = QUERIES) -> dict:
    """Train one embedding on BASE (its own classes) and score few-shot episodes on NEW's classes with it; shared
    with bench/fewshot_cifar10.py."""
    import seehear
    from seehear.tasks.fewshot import evaluate_fewshot

    t = time.time()
    run = seehear.train(str(base), str(out), overrides=[*common, *extra], overwrite=True, progress=False)
    train_s = round(time.time() - t, 1)
    t = time.time()
    fs = evaluate_fewshot(run.run_dir, new, ways=ways, shots=shots, episodes=episodes, seed=0, queries=queries)
    tr = run.meta["train"]
    return {"overrides": extra, "base_test_accuracy": round(run.metrics["accuracy"], 4),
            "train_seconds": tr["wall_seconds"], "epochs": tr["epochs_run"], "train_call_seconds": train_s,
            "evaluate_seconds": round(time.time() - t, 1), "fewshot": fs["shots"], "center": fs["center"],
            "learning_curve": learning_curve(out, "val_acc")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small"], help="small: a plumbing check (few takes, seconds of training)")
    ap.add_argument("--only", choices=sorted(EMBEDDINGS), action="append", help="train only this embedding (dev)")
    args = ap.parse_args(argv)
    need(RECORDINGS)
    small = args.limit == "small"
    all_rows = rows(SMALL["takes"] if small else None)
    base = [r for r in all_rows if r["speaker"] not in NEW_SPEAKERS and r["label"] in BASE_DIGITS]
    new = [r for r in all_rows if r["speaker"] in NEW_SPEAKERS and r["label"] in NEW_DIGITS]
    # takes 0-4 of the base set are its test split: the classifier's own accuracy, a check that it trained
    base_csv = write_manifest(base, lambda r: r["take"] < 5, WORK_DIR / "base.csv")
    new_csv = write_manifest(new, lambda r: False, WORK_DIR / "new.csv")
    budget = SMALL["budget"] if small else TIME_BUDGET
    episodes = SMALL["episodes"] if small else EPISODES
    with Bench("fewshot-fsdd" + ("-small" if small else ""), results=WORK / "results" if small else None) as b:
        b.figures.update({
            "data": {"base": f"digits 0-4 of {sorted({r['speaker'] for r in base})}: {len(base)} recordings",
                     "new": f"digits 5-9 of {list(NEW_SPEAKERS)}: {len(new)} recordings",
                     "credit": "FSDD, CC BY-SA 4.0, Jakobovski et al."},
            "limit": args.limit, "ways": WAYS, "episodes": episodes, "queries": QUERIES,
            "train_budget_seconds": budget, "load_before": round(os.getloadavg()[0], 2), "embeddings": {}})
        for name, extra in EMBEDDINGS.items():
            if args.only and name not in args.only:
                continue
            print(f"== {name} embedding", file=sys.stderr, flush=True)
            b.figures["embeddings"][name] = measure_embedding(
                base_csv, new_csv, WORK_DIR / "runs" / name, [*COMMON, f"train.time_budget={budget}"], extra, episodes)
            print(name, b.figures["embeddings"][name]["fewshot"], file=sys.stderr, flush=True)
        got = b.figures["embeddings"]
        scored = "episodic" if "episodic" in got else next(iter(got))
        for k, (key, target) in GOALS.items():
            b.goal(key, target, got[scored]["fewshot"][k]["accuracy"])
        b.figures["goals_scored_on"] = scored
        b.notes.append("goals are scored on the episodic embedding; the plain classifier's embedding is beside it, "
                       "measured on the same 600 episodes (seed 0)")
        if small:
            b.notes.append("--limit small: a plumbing check (12 takes, seconds of training); not the benchmark")


if __name__ == "__main__":
    main()

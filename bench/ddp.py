"""Data-parallel training on CPU: `seehear train --devices 2 --strategy ddp` (Lightning DDP, gloo) against one
process, same global batch (each of the 2 processes takes half), same epochs, seed and data.

Job: FSDD, the usual split (takes 0-4 of every speaker = test), the default audio recipe (TC-ResNet8 on MFCCs),
a fixed number of epochs (no time budget, so every side does the same work). It is compute-bound, not memory-bound:
the decoded clips are ~100 MB and the model is ~100k parameters, so a gradient all-reduce is small.

Three runs, each `python -m seehear train` in its own process (Lightning's DDP launcher starts its second rank by
re-running the command, which is why the runs are processes and not seehear.train() calls here):
  1proc-2threads   1 process, train.threads=2, batch B        (all of this 2-core machine to one process)
  1proc-1thread    1 process, train.threads=1, batch B        (one core: what each DDP rank has)
  2proc-ddp        2 processes, train.threads=1 each, batch B/2 per process (global batch B)
Figures: fit seconds (the Lightning fit, from meta.json; decoding and testing are outside it), whole-command
seconds, test accuracy, epochs, whether the ranks ended with the same weights; speedup_2proc_steps compares the
training steps alone (rank 0's clock), without the fit's fixed costs (gloo set-up, validation, checkpoints).
Goals: final_accuracy_diff = |accuracy(2proc) - accuracy(1proc-2threads)| <= 0.005; speedup_2proc =
fit(1proc-2threads) / fit(2proc) >= 1.6, i.e. against one process given the same 2 cores (the honest comparison
on this machine). speedup_vs_1thread = fit(1proc-1thread) / fit(2proc) is the scaling per core, reported beside.

A second job, `--job cifar`, is compute-bound in the arithmetic sense too: the image recipe (fastnet, ~1.9 M
weights, batch 256: 128 per process) on a CIFAR-10 subset (500 training / 100 test images a class), where each step
is a few GFLOP of convolutions rather than Python between small ops. It shows how far the per-core scaling goes
when the work per step is large (speedup_vs_1thread), and whether one process then uses its second thread as well.

    .venv/bin/python bench/ddp.py                   # 3 runs of 45 epochs, about 10 min in all → ddp.json
    .venv/bin/python bench/ddp.py --epochs 20
    .venv/bin/python bench/ddp.py --job cifar       # 3 runs of 10 epochs on 5,000 images → ddp-cifar10.json
    .venv/bin/python bench/ddp.py --limit small     # 300 clips, 2 epochs (~2 min, plumbing) → /tmp
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, WORK, Bench, run_accuracy

# job → (epochs, global batch: each of 2 processes takes half, result file)
JOBS = {"fsdd": (45, 64, "ddp"),  # the audio recipe's own epoch cap and batch
        "cifar": (10, 256, "ddp-cifar10")}  # the image recipe's batch; 10 epochs of 5,000 images
CIFAR_PER_CLASS = 500
SMALL = {"takes": 5, "test_takes": {0}, "epochs": 2, "per_class": 20}
RUNS = {  # name → (processes, torch threads per process)
    "1proc-2threads": (1, 2),
    "1proc-1thread": (1, 1),
    "2proc-ddp": (2, 1),
}


def train(data: Path, out: Path, procs: int, threads: int, epochs: int, batch: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "seehear", "train", str(data), "--out", str(out), "--overwrite", "--quiet",
           "--epochs", str(epochs), "--set", f"train.threads={threads}", "--set", f"train.batch_size={batch // procs}",
           "--set", "train.seed=0"]
    for o in extra:
        cmd += ["--set", o]
    if procs > 1:
        cmd += ["--devices", str(procs), "--strategy", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src")] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    env.pop("RANK", None), env.pop("LOCAL_RANK", None)
    t0, load = time.time(), round(os.getloadavg()[0], 2)  # the 2 cores are shared: a busy machine slows a side
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = round(time.time() - t0, 1)
    if r.returncode != 0:
        sys.exit(f"ddp: {' '.join(cmd)} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    meta = json.loads((out / "meta.json").read_text())
    t = meta["train"]
    return {"processes": procs, "threads_per_process": threads, "batch_per_process": batch // procs,
            "global_batch": batch, "test_accuracy": run_accuracy(out), "epochs": t["epochs_run"],
            "fit_seconds": t["wall_seconds"], "step_seconds": t.get("train_seconds"), "command_seconds": wall,
            "world_size": t.get("world_size", 1), "ranks_agree": t.get("ranks_agree"),
            "load_before": load}


def job_data(job: str, small: bool) -> tuple[Path, str, str, list[str]]:
    """The job's data (a manifest or a folder), its description, its recipe and the overrides it needs."""
    if job == "cifar":
        from cifar10 import extract, subset

        extract()
        per_class = SMALL["per_class"] if small else CIFAR_PER_CLASS
        return (subset(per_class), f"CIFAR-10 subset, {per_class} training / {max(1, per_class // 5)} test images "
                                   f"a class", "image-small (default: fastnet)", [])
    from fsdd import TEST_TAKES, recordings
    from peer import write_manifest

    rows = recordings()
    if small:
        rows = [r for r in rows if r["take"] < SMALL["takes"]]
    test = SMALL["test_takes"] if small else TEST_TAKES
    man = write_manifest(rows, lambda r: r["take"] in test, WORK / "ddp" / "fsdd.csv")
    return man, f"FSDD usual split, {len(rows)} clips", "audio-words (default)", ["data.split_column=split"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", choices=sorted(JOBS), default="fsdd",
                    help="fsdd: TC-ResNet8 on FSDD (→ ddp.json); cifar: fastnet on 5,000 CIFAR-10 images "
                         "(→ ddp-cifar10.json)")
    ap.add_argument("--epochs", type=int, help="default: fsdd 45, cifar 10")
    ap.add_argument("--limit", choices=["small"], help="small: 300 clips (cifar: 200 images), 2 epochs, written "
                                                       "to /tmp (plumbing)")
    args = ap.parse_args(argv)
    small = args.limit == "small"
    default_epochs, batch, name = JOBS[args.job]
    epochs = SMALL["epochs"] if small else (args.epochs or default_epochs)
    data, what, recipe, extra = job_data(args.job, small)
    with Bench(f"{name}-small" if small else name, results=WORK / "results" if small else None) as b:
        b.figures.update({"data": what, "recipe": recipe, "epochs": epochs, "global_batch": batch,
                          "cores": os.cpu_count(), "runs": {}})
        for run, (procs, threads) in RUNS.items():
            print(f"== {run}: {procs} process(es) x {threads} thread(s), {epochs} epochs", file=sys.stderr,
                  flush=True)
            b.figures["runs"][run] = r = train(data, WORK / "ddp" / args.job / "runs" / run, procs, threads, epochs,
                                               batch, extra)
            print(run, r, file=sys.stderr, flush=True)
        runs = b.figures["runs"]
        one, two, single = runs["1proc-2threads"], runs["2proc-ddp"], runs["1proc-1thread"]
        b.figures["speedup_vs_1thread"] = round(single["fit_seconds"] / two["fit_seconds"], 3)
        b.figures["speedup_2proc_steps"] = round(one["step_seconds"] / two["step_seconds"], 3)  # no DDP set-up
        b.figures["speedup_2threads_vs_1thread"] = round(single["fit_seconds"] / one["fit_seconds"], 3)
        b.goal("final_accuracy_diff", 0.005, round(abs(two["test_accuracy"] - one["test_accuracy"]), 4),
               higher_is_better=False)
        b.goal("speedup_2proc", 1.6, round(one["fit_seconds"] / two["fit_seconds"], 3))
        b.notes.append("what limits it on 2 cores: the 2-process run gives each rank 1 thread, so against one "
                       "process with 2 threads (speedup_2proc, the goal) DDP can only win where one process fails "
                       "to use its second thread (small per-op work, Python and data overhead between steps); "
                       "against one process with 1 thread (speedup_vs_1thread) it measures scaling per core, "
                       "which the gradient all-reduce (gloo, every step) and the other rank's share of the cores "
                       "cap below 2")
        b.notes.append("the ranks draw different augmentation and shuffles than the single process (each its own "
                       "shard), so the accuracy difference includes ordinary seed-to-seed spread")
        busy = max(r["load_before"] for r in runs.values())
        if busy > 0.5:
            b.notes.append(f"the machine was busy (1-minute load up to {busy} before a run): a 2-thread process then "
                           f"stalls at every parallel region whose second thread waits for a core, so the 2-thread "
                           f"baseline is hit hardest; compare quiet runs only")
        if small:
            b.notes.append("--limit small: a plumbing check (a few hundred files, 2 epochs), not a result")


if __name__ == "__main__":
    main()

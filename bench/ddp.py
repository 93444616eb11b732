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

    .venv/bin/python bench/ddp.py                   # 3 runs of 45 epochs, about 10 min in all → ddp.json
    .venv/bin/python bench/ddp.py --epochs 20
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

EPOCHS = 45  # the audio recipe's own epoch cap
BATCH = 64  # the audio recipe's batch: 32 per process under DDP
SMALL = {"takes": 5, "test_takes": {0}, "epochs": 2}
RUNS = {  # name → (processes, torch threads per process)
    "1proc-2threads": (1, 2),
    "1proc-1thread": (1, 1),
    "2proc-ddp": (2, 1),
}


def train(manifest: Path, out: Path, procs: int, threads: int, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "seehear", "train", str(manifest), "--out", str(out), "--overwrite", "--quiet",
           "--epochs", str(epochs), "--set", "data.split_column=split", "--set", f"train.threads={threads}",
           "--set", f"train.batch_size={BATCH // procs}", "--set", "train.seed=0"]
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
    return {"processes": procs, "threads_per_process": threads, "batch_per_process": BATCH // procs,
            "global_batch": BATCH, "test_accuracy": run_accuracy(out), "epochs": t["epochs_run"],
            "fit_seconds": t["wall_seconds"], "step_seconds": t.get("train_seconds"), "command_seconds": wall,
            "world_size": t.get("world_size", 1), "ranks_agree": t.get("ranks_agree"),
            "load_before": load}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--limit", choices=["small"], help="small: 300 clips, 2 epochs, written to /tmp (plumbing)")
    args = ap.parse_args(argv)
    from fsdd import TEST_TAKES, recordings
    from peer import write_manifest

    small = args.limit == "small"
    rows = recordings()
    if small:
        rows = [r for r in rows if r["take"] < SMALL["takes"]]
    test = SMALL["test_takes"] if small else TEST_TAKES
    epochs = SMALL["epochs"] if small else args.epochs
    man = write_manifest(rows, lambda r: r["take"] in test, WORK / "ddp" / "fsdd.csv")
    with Bench("ddp-small" if small else "ddp", results=WORK / "results" if small else None) as b:
        b.figures.update({"data": f"FSDD usual split, {len(rows)} clips", "recipe": "audio-words (default)",
                          "epochs": epochs, "global_batch": BATCH, "cores": os.cpu_count(), "runs": {}})
        for name, (procs, threads) in RUNS.items():
            print(f"== {name}: {procs} process(es) x {threads} thread(s), {epochs} epochs", file=sys.stderr,
                  flush=True)
            b.figures["runs"][name] = r = train(man, WORK / "ddp" / "runs" / name, procs, threads, epochs)
            print(name, r, file=sys.stderr, flush=True)
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
            b.notes.append("--limit small: a plumbing check (300 clips, 2 epochs), not a result")


if __name__ == "__main__":
    main()

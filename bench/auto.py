"""seehear auto against the default recipe at the same wall-clock budget, on FSDD (spoken digits, the usual split:
takes 0-4 of every speaker are the test set) and Caltech-7 (photos, seehear's own split).

Each data set: `seehear auto DATA --budget B` (successive halving over model families and recipe variants, the
winner trained again as OUT/best) and `seehear train DATA` with the default recipe and train.time_budget = 0.9 B
(the rest for decoding and measuring). Figures: test accuracy of both, the candidate chosen and why, the rungs
(candidates, seconds each, validation accuracy), and the wall time each took (auto's is measured by auto itself).
No goal: the issue asks for none; this says whether the search beats the hand-tuned recipe in the same time.

    .venv/bin/python bench/auto.py                          # both, 5 min a side (20 min) → bench/results/auto.json
    .venv/bin/python bench/auto.py --data fsdd --budget 300
    .venv/bin/python bench/auto.py --limit small            # smoke (FSDD, 3 takes, 60 s each) → /tmp
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from common import DATA, RESULTS, WORK, Bench, need, run_accuracy
from fsdd import TEST_TAKES, recordings
from peer import write_manifest

CALTECH = DATA / "caltech101-7"
BUDGET = 300  # seconds of wall clock for each side
THREADS = ["train.threads=2"]
SMALL = {"takes": 3, "budget": 60}  # --limit small: 180 clips, a minute each side: plumbing, not a result


def datasets(small: bool, which: list[str]) -> dict:
    out = {}
    if "fsdd" in which:
        rows = recordings()
        if small:
            rows = [r for r in rows if r["take"] < SMALL["takes"]]
        test = {0} if small else TEST_TAKES
        out["fsdd"] = (write_manifest(rows, lambda r: r["take"] in test, WORK / "auto" / "fsdd.csv"),
                       ["data.split_column=split"])
    if "caltech" in which and not small:
        out["caltech"] = (need(CALTECH), [])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["fsdd", "caltech", "both"], default="both")
    ap.add_argument("--budget", type=float, default=BUDGET, help="seconds for each side (default 300)")
    ap.add_argument("--limit", choices=["small"], help="small: a smoke run of about two minutes, written to /tmp")
    args = ap.parse_args(argv)
    import seehear
    from seehear.scale.auto import auto

    small = args.limit == "small"
    budget = SMALL["budget"] if small else args.budget
    which = ["fsdd", "caltech"] if args.data == "both" else [args.data]
    name, results = ("auto-small", WORK / "results") if small else ("auto", RESULTS)
    with Bench(name, results=results) as b:
        b.figures.update({"budget_seconds": budget, "overrides": THREADS, "data": {}})
        for key, (data, extra) in datasets(small, which).items():
            print(f"== {key}: seehear auto, {budget:.0f} s", file=sys.stderr, flush=True)
            work = WORK / "auto" / key
            shutil.rmtree(work / "search", ignore_errors=True)  # its own folder: a fresh search, not a resumed one
            a = auto(data, work / "search", budget=budget, overrides=THREADS + extra, progress=True)
            state = json.loads((work / "search" / "auto.json").read_text())
            print(f"== {key}: default recipe, train.time_budget {0.9 * budget:.0f} s", file=sys.stderr, flush=True)
            t0 = time.time()
            d = seehear.train(data, work / "default", overwrite=True, progress=False,
                              overrides=THREADS + extra + [f"train.time_budget={0.9 * budget}"])
            b.figures["data"][key] = {
                "auto": {"test_accuracy": run_accuracy(a.best_run), "chosen": a.chosen, "why": state["why"],
                         "wall_seconds": a.elapsed_seconds, "candidates": len(state["candidates"]),
                         "rungs": [{"size": g["size"], "slot_seconds": g["slot_seconds"], "status": g["status"],
                                    "val_accuracy": {c: x.get("val_accuracy") for c, x in g["runs"].items()}}
                                   for g in state["rungs"]]},
                "default": {"test_accuracy": run_accuracy(d.run_dir), "recipe": d.meta["recipe"],
                            "model": d.meta["model"]["name"], "wall_seconds": round(time.time() - t0, 1)}}
            print(key, {k: v["test_accuracy"] for k, v in b.figures["data"][key].items()}, file=sys.stderr)
        if small:
            b.notes.append("--limit small: a plumbing check (FSDD, 3 takes per digit and speaker, 60 s), not a result")


if __name__ == "__main__":
    main()

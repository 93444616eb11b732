"""Free Spoken Digit Dataset: spoken digits 0-9, 6 speakers x 50 takes, 8 kHz (CC BY-SA 4.0, Jakobovski et al.).

Two questions, each answered by seehear's default audio recipe and by a classic peer on the same splits:
  (a) the usual split (takes 0-4 of every speaker = test): do we learn the words?        goal >= 99%
  (b) each speaker held out in turn, trained on the other five: do we hear NEW voices?   goal >= 97% mean
Each seehear run trains within TIME_BUDGET seconds on 2 CPU cores (goal: within 2 minutes).

The splits are built the seehear way: a manifest CSV (path,label,speaker,split) in a work folder, trained with
data.split_column=split (validation is carved from the training part automatically).

Peer: librosa MFCC (40 coefficients + deltas, mean and std over time) + scikit-learn StandardScaler + RBF SVC.

    .venv/bin/python bench/fsdd.py                       # the whole benchmark → bench/results/fsdd.json
    .venv/bin/python bench/fsdd.py --fast                # usual split, 30 s of training, 3 seeds → fsdd-30s.json
    .venv/bin/python bench/fsdd.py --only speakers --speakers theo,lucas --set train.epochs=20   (dev runs)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import DATA, WORK, Bench, learning_curve, need
from peer import error_ratio, peer_features, run_peer, write_manifest

# ---------------------------------------------------------------------------------------------- settings
RECORDINGS = DATA / "fsdd" / "recordings"
NAME = re.compile(r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav$")
TEST_TAKES = set(range(5))  # the usual split: takes 0-4 of every speaker are the test set
TIME_BUDGET = 100  # seconds of training per seehear run (the goal is 2 minutes, decoding and testing included)
SEEHEAR_OVERRIDES = [f"train.time_budget={TIME_BUDGET}", "train.threads=2"]  # everything else: the default recipe
GOAL_USUAL, GOAL_SPEAKERS_MEAN, GOAL_SECONDS = 0.99, 0.97, 120
FAST_SECONDS, FAST_SEEDS = 30, 3  # issue 4: 99% on the usual split with at most 30 s of training, mean of 3 seeds
FAST_BUDGET = 26  # train.time_budget: steps stop at 26 s; the per-epoch validation and checkpoints fit in the rest
WORK_DIR = WORK / "fsdd"
# -----------------------------------------------------------------------------------------------------------


def recordings() -> list[dict]:
    rows = []
    for f in sorted(need(RECORDINGS).glob("*.wav")):
        m = NAME.match(f.name)
        if m:
            rows.append({"path": str(f), "label": m["label"], "speaker": m["speaker"], "take": int(m["take"])})
    return rows


def run_seehear(manifest: Path, out: Path, overrides=()) -> dict:
    """Train with seehear's defaults (the audio recipe it picks itself) plus the benchmark's few overrides.
    `load_before` is the machine's 1-minute load average at the start: the 2 cores are shared, and a busy machine
    gets fewer epochs into the time budget."""
    import seehear

    t0, load = time.time(), round(os.getloadavg()[0], 2)
    res = seehear.train(str(manifest), str(out), overrides=["data.split_column=split", *SEEHEAR_OVERRIDES,
                                                            *overrides], overwrite=True, progress=False)
    tr = res.meta["train"]
    return {"accuracy": round(res.metrics["accuracy"], 4), "train_seconds": tr["wall_seconds"],
            "epochs": tr["epochs_run"], "stopped_by_time_budget": tr["stopped_early"],
            "run_seconds": round(time.time() - t0, 1), "load_before": load,
            "learning_curve": learning_curve(out, "val_acc")}  # validation accuracy per epoch against minutes


def settings_of(run_dir: Path) -> dict:
    """The recipe seehear picked and the settings a run actually trained with (from its meta.json)."""
    meta = json.loads((run_dir / "meta.json").read_text())
    return {"recipe": meta["recipe"], **{k: meta["config"][k] for k in ("model", "audio", "augment", "train")}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["usual", "speakers"], help="run one part only (dev)")
    ap.add_argument("--speakers", help="comma-separated held-out speakers (dev; default all six)")
    ap.add_argument("--set", action="append", default=[], help="extra seehear override key=value (dev)")
    ap.add_argument("--no-peer", action="store_true", help="skip the MFCC+SVM peer (dev)")
    ap.add_argument("--fast", action="store_true", help=f"the usual split with {FAST_SECONDS} s of training, "
                                                         f"{FAST_SEEDS} seeds → fsdd-30s.json")
    args = ap.parse_args(argv)
    if args.fast:
        return fast(recordings(), args.set)

    rows = recordings()
    speakers = sorted({r["speaker"] for r in rows})
    held = args.speakers.split(",") if args.speakers else speakers
    y = np.array([int(r["label"]) for r in rows])

    with Bench("fsdd") as b:
        b.figures["data"] = {"files": len(rows), "speakers": speakers, "credit": "FSDD, CC BY-SA 4.0, Jakobovski et al."}
        b.figures["seehear_overrides"] = SEEHEAR_OVERRIDES + args.set
        feats, b.figures["peer"] = peer_features(rows, enabled=not args.no_peer)

        if args.only in (None, "usual"):
            print("== usual split (takes 0-4 test)", file=sys.stderr, flush=True)
            man = write_manifest(rows, lambda r: r["take"] in TEST_TAKES, WORK_DIR / "usual.csv")
            ours = run_seehear(man, WORK_DIR / "runs" / "usual", args.set)
            usual = {"seehear": ours}
            if feats is not None:
                peer = run_peer(feats, y, np.array([r["take"] in TEST_TAKES for r in rows]))
                usual.update(peer=peer, error_ratio=error_ratio(ours["accuracy"], peer["accuracy"]))
            b.figures["usual_split"] = usual
            b.figures["seehear_settings"] = settings_of(WORK_DIR / "runs" / "usual")
            print(usual, file=sys.stderr, flush=True)
            b.goal("usual_split_accuracy", GOAL_USUAL, ours["accuracy"])
            b.goal("usual_split_train_seconds", GOAL_SECONDS, ours["train_seconds"], higher_is_better=False, unit="s")

        if args.only in (None, "speakers"):
            per = {}
            for spk in held:
                print(f"== speaker {spk} held out", file=sys.stderr, flush=True)
                man = write_manifest(rows, lambda r, s=spk: r["speaker"] == s, WORK_DIR / f"held_{spk}.csv")
                per[spk] = {"seehear": run_seehear(man, WORK_DIR / "runs" / f"held_{spk}", args.set)}
                if feats is not None:
                    per[spk]["peer"] = run_peer(feats, y, np.array([r["speaker"] == spk for r in rows]))
                print(spk, per[spk], file=sys.stderr, flush=True)
            acc = {s: v["seehear"]["accuracy"] for s, v in per.items()}
            summary = {"seehear_mean": round(statistics.mean(acc.values()), 4),
                       "seehear_min": round(min(acc.values()), 4), "seehear_hardest": min(acc, key=acc.get),
                       "seehear_max_train_seconds": max(v["seehear"]["train_seconds"] for v in per.values())}
            if feats is not None:
                pacc = {s: v["peer"]["accuracy"] for s, v in per.items()}
                summary.update(peer_mean=round(statistics.mean(pacc.values()), 4),
                               peer_min=round(min(pacc.values()), 4),
                               error_ratio=error_ratio(summary["seehear_mean"], statistics.mean(pacc.values())))
            b.figures["speaker_held_out"] = {"per_speaker": per, **summary}
            b.figures.setdefault("seehear_settings", settings_of(WORK_DIR / "runs" / f"held_{held[0]}"))
            print(summary, file=sys.stderr, flush=True)
            b.goal("speaker_held_out_mean_accuracy", GOAL_SPEAKERS_MEAN, summary["seehear_mean"])
            b.goal("speaker_held_out_max_train_seconds", GOAL_SECONDS, summary["seehear_max_train_seconds"],
                   higher_is_better=False, unit="s")
        b.notes.extend(NOTES)


def fast(rows: list[dict], extra: list[str]) -> None:
    """The usual split trained for at most FAST_SECONDS (the whole fit, per-epoch validation included), with
    seeds 0..FAST_SEEDS-1: accuracy mean, spread and minimum; how the fit's time was spent."""
    with Bench("fsdd-30s") as b:
        man = write_manifest(rows, lambda r: r["take"] in TEST_TAKES, WORK_DIR / "usual.csv")
        runs = []
        for seed in range(FAST_SEEDS):
            print(f"== usual split, seed {seed}, {FAST_BUDGET} s budget", file=sys.stderr, flush=True)
            out = WORK_DIR / "runs" / f"usual-30s-seed{seed}"
            r = run_seehear(man, out, [f"train.time_budget={FAST_BUDGET}", f"train.seed={seed}", *extra])
            tr = json.loads((out / "meta.json").read_text())["train"]
            runs.append({"seed": seed, **r, "steps": tr["steps"], "step_seconds": tr["train_seconds"],
                         "data_wait_share": tr.get("data_wait_share")})
            print(runs[-1], file=sys.stderr, flush=True)
        accs = [r["accuracy"] for r in runs]
        b.figures.update({
            "split": "usual (takes 0-4 of every speaker = test)", "seeds": FAST_SEEDS, "budget_seconds": FAST_BUDGET,
            "recipe_changes": extra, "accuracy_mean": round(statistics.mean(accs), 4),
            "accuracy_std": round(statistics.pstdev(accs), 4), "accuracy_min": min(accs),
            "max_fit_seconds": max(r["train_seconds"] for r in runs),
            "data_wait_share_mean": round(statistics.mean(r["data_wait_share"] for r in runs), 4),
            "runs": runs, "seehear_settings": settings_of(WORK_DIR / "runs" / "usual-30s-seed0")})
        b.goal("usual_split_accuracy_30s", GOAL_USUAL, round(statistics.mean(accs), 4))
        b.goal("usual_split_fit_seconds", FAST_SECONDS, max(r["train_seconds"] for r in runs),
               higher_is_better=False, unit="s")
        b.notes.append("fit seconds = the whole Lightning fit (training steps, per-epoch validation, checkpoints); "
                       "decoding the 3,000 files and testing come on top")


# What was tried while tuning RECIPES["audio-words"] (speaker-held-out folds as the dev signal), in order.
NOTES: list[str] = []

if __name__ == "__main__":
    main()

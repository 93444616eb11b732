"""EmoDB (Berlin Emotional Speech Database; Burkhardt et al. 2005): 535 German utterances by 10 actors in 7 emotions,
cut or padded to 2.0 s at 22.05 kHz. Speakers held out: 5 folds of 2 actors (one man and one woman each), trained on
the other 8. Reported: accuracy and unweighted average recall (UAR = balanced accuracy), mean over folds, for
seehear and for the classic peer on the same folds.

The splits are built the seehear way: a manifest CSV (path,label,speaker,split) in a work folder, trained with
data.split_column=split (validation carved from the training part automatically).

Peer: librosa MFCC (40 coefficients + deltas, mean and std over time) + scikit-learn StandardScaler + RBF SVC.

    .venv/bin/python bench/emodb.py                      # → bench/results/emodb.json
    .venv/bin/python bench/emodb.py --folds 0,1 --set train.epochs=20 --config audio-words   (dev runs)
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

from common import DATA, WORK, Bench, need
from peer import error_ratio, peer_features, run_peer, write_manifest

# ---------------------------------------------------------------------------------------------- settings
FILES = DATA / "emodb" / "wav"
NAME = re.compile(r"(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])\.(flac|wav)$")
EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
            "N": "neutral"}
# Actors (Burkhardt et al. 2005): men 03 10 11 12 15, women 08 09 13 14 16. Each fold holds out one of each.
FOLDS = [("03", "08"), ("10", "09"), ("11", "13"), ("12", "14"), ("15", "16")]
RECIPE = "audio-emotion"  # seehear's emotion recipe (src/seehear/recipes.py), passed as --config would be
TIME_BUDGET = 100  # seconds of training per seehear run
SEEHEAR_OVERRIDES = [f"train.time_budget={TIME_BUDGET}", "train.threads=2"]
WORK_DIR = WORK / "emodb"
# -----------------------------------------------------------------------------------------------------------


def recordings() -> list[dict]:
    rows = []
    for f in sorted(need(FILES).iterdir()):
        m = NAME.match(f.name)
        if m:
            rows.append({"path": str(f), "label": EMOTIONS[m["emotion"]], "speaker": m["speaker"]})
    return rows


def run_seehear(manifest: Path, out: Path, recipe: str, overrides=()) -> dict:
    """Train with every setting from `recipe` (resolved over the defaults, as a whole config: nothing leaks in from
    the auto-picked words recipe), plus the overrides."""
    import seehear
    from seehear.recipes import resolve

    t0, load = time.time(), round(os.getloadavg()[0], 2)  # the 2 cores are shared: a busy machine fits fewer epochs
    res = seehear.train(str(manifest), str(out), config=resolve(recipe),
                        overrides=["data.split_column=split", *SEEHEAR_OVERRIDES, *overrides], overwrite=True,
                        progress=False)
    tr = res.meta["train"]
    return {"accuracy": round(res.metrics["accuracy"], 4), "uar": round(res.metrics["balanced_accuracy"], 4),
            "train_seconds": tr["wall_seconds"], "epochs": tr["epochs_run"],
            "stopped_by_time_budget": tr["stopped_early"], "run_seconds": round(time.time() - t0, 1),
            "load_before": load}


def settings_of(run_dir: Path) -> dict:
    """The settings a run actually trained with (from its meta.json)."""
    meta = json.loads((run_dir / "meta.json").read_text())
    return {k: meta["config"][k] for k in ("model", "audio", "augment", "train")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", help="comma-separated fold numbers 0-4 (dev; default all)")
    ap.add_argument("--config", default=RECIPE, help=f"recipe name (default {RECIPE})")
    ap.add_argument("--set", action="append", default=[], help="extra seehear override key=value (dev)")
    ap.add_argument("--no-peer", action="store_true", help="skip the MFCC+SVM peer (dev)")
    args = ap.parse_args(argv)

    rows = recordings()
    folds = [FOLDS[int(i)] for i in args.folds.split(",")] if args.folds else FOLDS
    y = np.array([r["label"] for r in rows])

    with Bench("emodb") as b:
        b.figures["data"] = {"files": len(rows), "speakers": sorted({r["speaker"] for r in rows}),
                             "emotions": sorted(EMOTIONS.values()), "credit": "EmoDB, Burkhardt et al. 2005"}
        b.figures["seehear"] = {"recipe": args.config, "overrides": SEEHEAR_OVERRIDES + args.set}
        feats, b.figures["peer"] = peer_features(rows, enabled=not args.no_peer)

        per = {}
        for held in folds:
            name = "+".join(held)
            print(f"== speakers {name} held out", file=sys.stderr, flush=True)
            man = write_manifest(rows, lambda r, h=set(held): r["speaker"] in h,
                                 WORK_DIR / f"held_{'_'.join(held)}.csv")
            per[name] = {"test_files": sum(r["speaker"] in held for r in rows),
                         "seehear": run_seehear(man, WORK_DIR / "runs" / f"held_{'_'.join(held)}", args.config,
                                                args.set)}
            if feats is not None:
                per[name]["peer"] = run_peer(feats, y, np.array([r["speaker"] in held for r in rows]))
            print(name, per[name], file=sys.stderr, flush=True)

        def mean(who, key):
            return round(statistics.mean(v[who][key] for v in per.values()), 4)

        summary = {"seehear_accuracy_mean": mean("seehear", "accuracy"), "seehear_uar_mean": mean("seehear", "uar"),
                   "seehear_max_train_seconds": max(v["seehear"]["train_seconds"] for v in per.values())}
        if feats is not None:
            summary.update(peer_accuracy_mean=mean("peer", "accuracy"), peer_uar_mean=mean("peer", "uar"),
                           uar_error_ratio=error_ratio(summary["seehear_uar_mean"], mean("peer", "uar")))
        b.figures["folds"] = per
        b.figures["seehear"]["settings"] = settings_of(WORK_DIR / "runs" / f"held_{'_'.join(folds[0])}")
        b.figures.update(summary)
        print(summary, file=sys.stderr, flush=True)
        if feats is not None:
            b.goal("uar_at_least_peer", summary["peer_uar_mean"], summary["seehear_uar_mean"])
        b.goal("max_train_seconds", 120, summary["seehear_max_train_seconds"], higher_is_better=False, unit="s")
        b.notes.extend(NOTES)


# What was tried for the emotion recipe, in order.
NOTES: list[str] = []

if __name__ == "__main__":
    main()

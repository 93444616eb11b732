"""Trust on FSDD (spoken digits, 6 speakers; CC BY-SA 4.0, Jakobovski et al.): the default FSDD audio run (the usual
split of bench/fsdd.py, takes 0-4 of every speaker = test; seehear's default audio recipe, trained here for
bench/fsdd.py's budget, or an existing run with --run), then `seehear report` on its own data: temperature scaling
fitted on the run's validation split and measured on its test split (ECE before/after), accuracy under the audio
corruptions (white, pink and babble noise at SNR 20/10/5/0 dB, reverberation, clipping, band limit, speed), FGSM
and PGD accuracy with the perturbation's L-inf bound set from each clip's RMS at SNR 40/30/20 dB, Grad-CAM's
faithfulness on the spectrogram (deletion AUC against a random block ranking) and, from a second report with
--method ig, integrated gradients' on the same test examples, per-speaker accuracy and UAR with bootstrap
intervals, the embedding maps and the suspected label errors. The JSON follows bench/trust_cifar10.py's.

The usual split has every speaker in training too: per-speaker figures here say whom the model hears worse among
voices it has heard (bench/fsdd.py's held-out-speaker folds are the unseen-voice question).

    .venv/bin/python bench/trust_fsdd.py                  # trains 100 s first → bench/results/trust-fsdd.json
    .venv/bin/python bench/trust_fsdd.py --run RUN_DIR    # an existing run trained on WORK/fsdd/usual.csv
    .venv/bin/python bench/trust_fsdd.py --limit small    # smoke, < 60 s → /tmp/seehear-bench/results/
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, Bench  # noqa: E402

ECE_GOAL = 0.010  # the goals of bench/trust_cifar10.py
DELETION_GOAL = 0.5
SMALL = {"takes_train": range(5, 8), "takes_test": range(0, 2), "budget": 8, "robust": 40, "adversarial": 16}


def manifest(small: bool) -> Path:
    from fsdd import TEST_TAKES, WORK_DIR, recordings
    from peer import write_manifest

    rows = recordings()
    if not small:
        return write_manifest(rows, lambda r: r["take"] in TEST_TAKES, WORK_DIR / "usual.csv")
    keep = set(SMALL["takes_train"]) | set(SMALL["takes_test"])
    rows = [r for r in rows if r["take"] in keep]
    return write_manifest(rows, lambda r: r["take"] in SMALL["takes_test"], WORK / "trust-fsdd-small" / "small.csv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="an existing run trained on the usual-split manifest")
    ap.add_argument("--limit", choices=["small", "full"], default="full",
                    help="small: takes 5-7 train / 0-1 test, seconds of training, few attacked clips (smoke, "
                         "< 60 s; written under /tmp, never to bench/results)")
    ap.add_argument("--budget", type=float, help="training seconds when no --run is given (default: bench/fsdd.py's)")
    ap.add_argument("--robust-examples", type=int, default=300, help="test clips under each corruption")
    ap.add_argument("--adversarial-examples", type=int, default=256, help="test clips attacked")
    a = ap.parse_args(argv)
    import seehear
    from fsdd import SEEHEAR_OVERRIDES, TIME_BUDGET
    from seehear.trust import trust_report

    small = a.limit == "small"
    budget = a.budget or (SMALL["budget"] if small else TIME_BUDGET)
    robust_n = SMALL["robust"] if small else a.robust_examples
    adv_n = SMALL["adversarial"] if small else a.adversarial_examples
    name = "trust-fsdd" + ("-small" if small else "")
    with Bench(name, results=WORK / "results" if small else None) as b:
        t = time.time()
        data = manifest(small)
        run = a.run
        if run is None:
            run = WORK / "runs" / name
            over = ["data.split_column=split", *SEEHEAR_OVERRIDES, f"train.time_budget={budget}"]
            if small:
                over += ["train.threads=1", "data.workers=1"]
            seehear.train(str(data), out=run, overrides=over, overwrite=True, progress=False)
            b.figures["train_seconds_end_to_end"] = round(time.time() - t, 1)
        t = time.time()
        r = trust_report(run, data, robustness=True, adversarial=True, fairness_by="speaker", progress=True,
                         robust_examples=robust_n, adversarial_examples=adv_n)
        b.figures["trust_report_seconds"] = round(time.time() - t, 1)
        t = time.time()
        # integrated gradients: a second report (explanations only) into a side folder; the same seed picks the
        # same test examples for the deletion curves, so the two methods are compared on the same clips
        ig = trust_report(run, data, method="ig", out=WORK / f"{name}-ig", progress=True)
        b.figures["ig_report_seconds"] = round(time.time() - t, 1)
        cal = r["calibration"]
        meta = json.loads((Path(run) / "meta.json").read_text())  # how the measured run was trained
        b.figures["run_trained_by"] = {"command": meta.get("command"), "recipe": meta.get("recipe"),
                                       "model": meta.get("model"), "train": meta.get("train"),
                                       "counts": (meta.get("data") or {}).get("counts")}
        faith = {e["method"]: e["faithfulness"] for e in (r["explanations"], ig["explanations"])}
        fair = r["fairness"]
        b.figures.update({
            "data": str(data), "limit": a.limit, "run": str(run), "budget_seconds": None if a.run else budget,
            "test_clips": r["n"], "measured_on": r["measured_on"], "accuracy": r["accuracy"],
            "temperature": cal.get("temperature"), "valid_clips": cal.get("n"), "calibration_test": cal.get("test"),
            "explanations": faith, "adversarial": r["adversarial"], "robustness": r["robustness"],
            "fairness": {"column": fair["column"],
                         **{m: {k: fair[m][k] for k in ("per_group", "worst_group", "best_group", "worst", "best",
                                                          "gap", "ratio_to_best", "note", "too_small") if k in fair[m]}
                            for m in ("accuracy", "uar")}},
            "label_issues": {"method": r["label_issues"]["method"], "listed": len(r["label_issues"]["listed"])},
            "embeddings": {k: v for k, v in r["embeddings"].items() if k in ("n", "dim", "skipped")},
            "stage_seconds": r["stage_seconds"], "robust_examples": robust_n, "adversarial_examples": adv_n,
        })
        b.goal("ece_after_temperature", ECE_GOAL, round(cal["test"]["ece_after"], 4), higher_is_better=False)
        grad = faith.get("gradcam") or next(iter(faith.values()))
        b.goal("gradcam_deletion_auc_vs_random", DELETION_GOAL, round(grad["deletion_auc_vs_random"], 3),
               higher_is_better=False)
        b.notes.append("ECE on the run's test split with T fitted on the run's validation split (15 bins); "
                       "deletion AUC: 64 test clips, 16 steps on the log-mel spectrogram, blurred reference, 8x8 "
                       "random-block ranking; adversarial: L-inf bound = clip RMS x 10^(-SNR/20), PGD 10 steps")
        b.notes.append("the usual split shares speakers between train and test: per-speaker gaps are among voices "
                       "the model has heard")
        if small:
            b.notes.append("--limit small: a tiny run; checks the plumbing, not the goals")
    return 0


if __name__ == "__main__":
    sys.exit(main())

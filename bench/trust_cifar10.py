"""Trust on CIFAR-10: a run of seehear's default image recipe (trained here for a short budget, or an existing
run with --run), then `seehear report` on its own data: temperature scaling fitted on the run's validation split
and measured on its test split, Grad-CAM faithfulness (deletion AUC against a random block ranking),
corruption accuracy (10 corruptions x 5 severities on 300 test images), FGSM/PGD accuracy (128 images), the
embedding maps and the suspected label errors.

    .venv/bin/python bench/trust_cifar10.py                # trains 150 s first → bench/results/trust-cifar10.json
    .venv/bin/python bench/trust_cifar10.py --run RUN_DIR       # an existing CIFAR-10 run of seehear
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, Bench  # noqa: E402

ECE_GOAL = 0.010
DELETION_GOAL = 0.5


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, help="an existing run trained on the extracted CIFAR-10 folder")
    ap.add_argument("--budget", type=float, default=150.0, help="training seconds when no --run is given")
    ap.add_argument("--no-robustness", action="store_true")
    ap.add_argument("--robust-examples", type=int, default=300, help="test images under each corruption")
    ap.add_argument("--adversarial-examples", type=int, default=128, help="test images attacked")
    a = ap.parse_args(argv)
    import seehear
    from cifar10 import EXTRACTED, extract
    from seehear.trust import trust_report

    with Bench("trust-cifar10") as b:
        t = time.time()
        extract()
        # The full archive has train/ and test/; a copy holding only test/ (10,000 images) is used whole, and the
        # run then makes its own stratified train/valid/test split of it (70/10/20).
        data = EXTRACTED if (EXTRACTED / "train").is_dir() else EXTRACTED / "test"
        n_images = sum(1 for _ in data.rglob("*.jpg"))
        b.figures.update(data=str(data), images=n_images)
        if data.name == "test":
            b.notes.append(f"{data} holds only CIFAR-10's 10,000 test images here: the run trains on 70% of them "
                           f"and is measured on its own 20% test split")
        run = a.run
        if run is None:
            run = WORK / "runs" / "trust-cifar10"
            seehear.train(data, out=run, time_budget=a.budget, overwrite=True, progress=False)
            b.figures["train_seconds_end_to_end"] = round(time.time() - t, 1)
        t = time.time()
        r = trust_report(run, data, robustness=not a.no_robustness, adversarial=True, progress=True,
                         robust_examples=a.robust_examples, adversarial_examples=a.adversarial_examples)
        b.figures["trust_report_seconds"] = round(time.time() - t, 1)
        cal, faith = r["calibration"], r["explanations"]["faithfulness"]
        meta = json.loads((Path(run) / "meta.json").read_text())  # how the measured run was trained
        b.figures["run_trained_by"] = {"command": meta.get("command"), "recipe": meta.get("recipe"),
                                       "model": meta.get("model"), "train": meta.get("train"),
                                       "counts": (meta.get("data") or {}).get("counts")}
        b.figures.update({
            "run": str(run), "budget_seconds": None if a.run else a.budget, "test_images": r["n"],
            "accuracy": r["accuracy"], "temperature": cal.get("temperature"),
            "valid_images": cal.get("n"), "calibration_test": cal.get("test"),
            "explanations": {"method": r["explanations"]["method"], **faith},
            "adversarial": r["adversarial"], "robustness": r.get("robustness"),
            "label_issues": {"method": r["label_issues"]["method"], "listed": len(r["label_issues"]["listed"])},
            "stage_seconds": r["stage_seconds"], "robust_examples": a.robust_examples,
            "adversarial_examples": a.adversarial_examples,
        })
        b.goal("ece_after_temperature", ECE_GOAL, round(cal["test"]["ece_after"], 4), higher_is_better=False)
        b.goal("gradcam_deletion_auc_vs_random", DELETION_GOAL, round(faith["deletion_auc_vs_random"], 3),
               higher_is_better=False)
        b.notes.append("ECE on the run's test split with T fitted on the run's validation split (15 bins); "
                       "deletion AUC: 64 test images, 16 steps, blurred reference, 8x8 random-block ranking")
    return 0


if __name__ == "__main__":
    sys.exit(main())

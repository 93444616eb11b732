"""Trust on CIFAR-10 (issue 12): the default image recipe beside two robust recipes, each trained here on the
50,000 training images and measured by `seehear report` on the 10,000 test images, in one invocation:

- default: the default recipe (`--budget`, 480 s: the 8-minute recipe);
- augmix: the same with `augment.policy=augmix` (corruption-robust training), same budget;
- adversarial: the same with `train.adversarial=nfgsm` (N-FGSM, ε = 8/255), `--adv-budget` (1740 s of steps, so that the
  fit with its validation stays within the issue's 30 minutes); `adversarial-fgsm` (FGSM with random start, the recipe's 20 epochs) on request.

A run of some of the recipes (`--recipes adversarial`) writes trust-cifar10-RECIPES.json, never the full one.

Each report: temperature scaling fitted on the run's validation split (ECE/NLL on its test split), Grad-CAM
deletion AUC against a random block ranking, accuracy under 10 corruptions x 5 severities (`--robust-examples`
test images), FGSM and PGD-20 at ε = 2, 4, 8 of 255 (`--adversarial-examples`), the embedding maps, label issues.

    .venv/bin/python bench/trust_cifar10.py                       # about 55 min → bench/results/trust-cifar10.json
    .venv/bin/python bench/trust_cifar10.py --recipes default --budget 150      # one short run
    .venv/bin/python bench/trust_cifar10.py --run RUN_DIR                        # report on an existing run only
    .venv/bin/python bench/trust_cifar10.py --limit small     # plumbing, ~4 min → /tmp/seehear-bench/results/
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
CORRUPTION_GOAL, CLEAN_DROP_GOAL = 0.85, 0.01
PGD_GOAL, ADV_CLEAN_GOAL = 0.45, 0.80
RECIPES = {  # name -> the settings on top of the default image recipe
    "default": [],
    "augmix": ["augment.policy=augmix"],
    # N-FGSM: FGSM-RS (adversarial-fgsm, measured at 59d8c66) overfit catastrophically here: 0% under PGD. The epoch
    # cap is lifted so that the 30-minute budget, not the recipe's 20 epochs, ends training (the schedule follows time)
    "adversarial": ["train.adversarial=nfgsm", "train.adversarial_eps=8", "train.epochs=40"],
    "adversarial-fgsm": ["train.adversarial=fgsm", "train.adversarial_eps=8"],
}


def small_subset(src: Path, per_class: int) -> Path:
    """A symlinked train/test subset (per_class training and per_class/5 test images per class) for --limit small."""
    out = WORK / f"cifar10-trust-small-{per_class}"
    for split, n in (("train", per_class), ("test", max(10, per_class // 5))):
        for cls in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            d = out / split / cls.name
            d.mkdir(parents=True, exist_ok=True)
            for f in sorted(cls.glob("*.jpg"))[:n]:
                if not (d / f.name).exists():
                    (d / f.name).symlink_to(f.resolve())
    return out


def measure(run: Path, data: Path, a, trust_report) -> dict:
    t = time.time()
    r = trust_report(run, data, robustness=True, adversarial=True, progress=True,
                     robust_examples=a.robust_examples, adversarial_examples=a.adversarial_examples)
    cal, faith = r["calibration"], r["explanations"]["faithfulness"]
    meta = json.loads((run / "meta.json").read_text())
    pgd8 = [x["accuracy"] for x in r["adversarial"]["results"] if x["attack"] == "pgd" and x["eps_pixels"] == 8.0]
    return {
        "run": str(run), "test_images": r["n"], "accuracy": r["accuracy"],
        "trained_by": {"command": meta.get("command"), "recipe": meta.get("recipe"), "model": meta.get("model"),
                       "train": meta.get("train"), "augment": meta.get("augment")},
        "temperature": cal.get("temperature"), "valid_images": cal.get("n"), "calibration_test": cal.get("test"),
        "explanations": {"method": r["explanations"]["method"], **faith},
        "corruption_accuracy_mean": r["robustness"]["mean_corruption_accuracy"],
        "pgd20_accuracy_eps8": pgd8[0] if pgd8 else None,
        "adversarial": r["adversarial"], "robustness": r["robustness"],
        "label_issues": {"method": r["label_issues"]["method"], "listed": len(r["label_issues"]["listed"])},
        "stage_seconds": r["stage_seconds"], "report_seconds": round(time.time() - t, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, help="report on this existing CIFAR-10 run only (no training)")
    ap.add_argument("--recipes", default="default,augmix,adversarial", help=f"of {', '.join(RECIPES)}")
    ap.add_argument("--budget", type=float, default=480.0, help="training seconds, default and augmix")
    ap.add_argument("--adv-budget", type=float, default=1740.0,
                    help="training-step seconds, adversarial (validation adds about a minute: within 30 minutes)")
    ap.add_argument("--robust-examples", type=int, default=1000, help="test images under each corruption")
    ap.add_argument("--adversarial-examples", type=int, default=256, help="test images attacked")
    ap.add_argument("--limit", choices=["small"], help="small: 100 images per class, 40 s budgets (plumbing)")
    a = ap.parse_args(argv)
    import seehear
    from cifar10 import EXTRACTED, extract
    from seehear.trust import trust_report

    chosen = [r.strip() for r in a.recipes.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in RECIPES]
    if unknown:
        sys.exit(f"bench: unknown recipe(s) {', '.join(unknown)}: choose from {', '.join(RECIPES)}")
    name = "trust-cifar10" + ("" if a.run or chosen == ["default", "augmix", "adversarial"] else "-" + "-".join(chosen))
    if a.limit:
        a.budget = a.adv_budget = 40.0
        a.robust_examples, a.adversarial_examples = 100, 64
        name += "-small"
    with Bench(name, results=WORK / "results" if a.limit else None) as b:  # a smoke run never replaces results
        extract()
        data = small_subset(EXTRACTED, 100) if a.limit else EXTRACTED
        b.figures.update(data=str(data), images=sum(1 for _ in data.rglob("*.jpg")),
                         robust_examples=a.robust_examples, adversarial_examples=a.adversarial_examples)
        rows = {}
        if a.run:
            rows["given"] = measure(a.run, data, a, trust_report)
        else:
            for rec in chosen:
                budget = a.adv_budget if rec.startswith("adversarial") else a.budget
                run = WORK / "runs" / f"trust-cifar10-{rec}{'-small' if a.limit else ''}"
                t = time.time()
                seehear.train(data, out=run, time_budget=budget, overrides=RECIPES[rec], overwrite=True,
                              progress=False)
                rows[rec] = {"budget_seconds": budget, "train_seconds_end_to_end": round(time.time() - t, 1),
                             **measure(run, data, a, trust_report)}
                b.figures["recipes"] = rows  # kept as it goes: a killed run still shows what finished
        b.figures["recipes"] = rows
        base = rows.get("default") or rows.get("given")
        if base:
            b.goal("ece_after_temperature", ECE_GOAL, round(base["calibration_test"]["ece_after"], 4),
                   higher_is_better=False)
            b.goal("gradcam_deletion_auc_vs_random", DELETION_GOAL,
                   round(base["explanations"]["deletion_auc_vs_random"], 3), higher_is_better=False)
        if "augmix" in rows:
            b.goal("corruption_accuracy_mean", CORRUPTION_GOAL, round(rows["augmix"]["corruption_accuracy_mean"], 4))
            if base:
                b.goal("clean_accuracy_drop", CLEAN_DROP_GOAL,
                       round(base["accuracy"] - rows["augmix"]["accuracy"], 4), higher_is_better=False)
        if "adversarial" in rows:
            adv = rows["adversarial"]
            b.goal("pgd20_accuracy_eps8", PGD_GOAL, round(adv["pgd20_accuracy_eps8"], 4))
            b.goal("clean_accuracy_adversarial", ADV_CLEAN_GOAL, round(adv["accuracy"], 4))
            b.goal("adversarial_train_minutes", 30, round(adv["trained_by"]["train"]["wall_seconds"] / 60, 1),
                   higher_is_better=False)  # the fit's wall clock (steps + validation), decoding not included
        b.notes.append("every recipe is measured the same way: ECE on the run's test split with T fitted on its "
                       "validation split (15 bins); deletion AUC on 64 test images, 16 steps, blurred reference, "
                       "8x8 random-block ranking; corruption accuracy is the mean over 10 corruptions x 5 "
                       "severities; PGD: 20 steps of 2.5 ε/20 from a random start, L∞ in pixel levels of 255")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""More from the data you have, on CIFAR-10 (the "image-small" recipe, same budget per setting, same run):

    .venv/bin/python bench/augment_cifar10.py policies [--subset 200] [--budget 60]
        each augment.policy (none = the default), mixup and CutMix → bench/results/augment-cifar10[-subset].json
        figures: test accuracy per policy, data-wait share (time spent making batches) per policy
    .venv/bin/python bench/augment_cifar10.py policies --budget 1800 --only POLICY --set KEY=VALUE ...
        the 30-minute figure (bench/cifar10.py's 30-minute recipe changes given with --set)
        → bench/results/augment-cifar10-30min.json
    .venv/bin/python bench/augment_cifar10.py longtail [--subset 0.1] [--budget 60]
        long-tail CIFAR-10 (Cui et al. 2019: class i keeps 5000 * 100^(-i/9) images, 12,406 in all; --subset
        scales that), tested on the balanced test set, default vs imbalance settings
        → bench/results/longtail-cifar10[-subset].json

The budget is train.time_budget (training steps only). Goals from the issue are recorded for the full runs only:
augment-cifar10 accuracy_best_policy_8min above the default's (--budget 480, no --subset), accuracy_best_policy_30min
>= 0.92 (--budget 1800) and longtail-cifar10
balanced_accuracy_best >= 0.80 (no --subset).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import WORK, Bench
from cifar10 import EXTRACTED, MARKER, extract

POLICIES = ["none", "randaugment", "trivialaugment", "augmix"]
MIXES = {"mixup": ["augment.mixup=0.2"], "cutmix": ["augment.cutmix=1.0"]}  # batch-level label mixing (alpha)
LONGTAIL = {  # name -> overrides
    "default": [],
    "balanced_sampler": ["train.sampler=balanced"],
    "focal": ["train.loss=focal"],
    # logit adjustment without the recipe's label smoothing, which caps margins below log(100) and so overcorrects
    # (engine/imbalance.smoothing_conflict; bench/results/probes/longtail-cifar10-20-epochs.json)
    "logit_adjusted": ["train.loss=logit_adjusted", "train.label_smoothing=0"],
    "effective_weights_drw": ["train.class_weights=true", "train.class_weight_kind=effective", "train.drw=0.6"],
    "posthoc": ["train.posthoc_tau=1.0", "train.label_smoothing=0"],
    # the combination: class-balanced focal loss (Cui et al. 2019's own pairing), its weights deferred (DRW)
    "focal_effective_drw": ["train.loss=focal", "train.class_weights=true", "train.class_weight_kind=effective",
                            "train.drw=0.6"],
}
LONGTAIL_COMMON = ["train.epochs=200"]  # the time budget decides: the recipe's 20 epochs take ~100 s of 12,406 images


def _link(out: Path, per_class: dict[str, int], test_per_class: int) -> Path:
    """A folder of symlinks: per_class[c] training images of class c and test_per_class test images each."""
    if (out / MARKER).is_file():
        return out
    import shutil

    if out.exists():
        shutil.rmtree(out)
    for split in ("train", "test"):
        for cls in sorted(d for d in (EXTRACTED / split).iterdir() if d.is_dir()):
            n = per_class[cls.name] if split == "train" else test_per_class
            dst = out / split / cls.name
            dst.mkdir(parents=True)
            for f in sorted(cls.glob("*.jpg"))[:n]:
                (dst / f.name).symlink_to(f)
    (out / MARKER).write_text("done\n")
    return out


def _train(data: Path, name: str, budget: float, overrides: list[str]) -> dict:
    import seehear

    r = seehear.train(data, out=WORK / "runs-augment" / name, time_budget=budget, overwrite=True, progress=False,
                      overrides=[*overrides, "train.seed=0"])
    tr = r.meta["train"]
    return {"overrides": overrides, "test_accuracy": round(r.metrics["accuracy"], 4),
            "test_balanced_accuracy": round(r.metrics["balanced_accuracy"], 4),
            "data_wait_share": tr["data_wait_share"], "train_seconds": tr["train_seconds"], "steps": tr["steps"],
            "epochs": tr["epochs_run"], "train_images": r.meta["data"]["counts"]["train"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=["policies", "longtail"])
    ap.add_argument("--subset", type=float, default=None,
                    help="policies: training images per class; longtail: share of the 12,406 long-tail images")
    ap.add_argument("--budget", type=float, default=None, help="training seconds per setting")
    ap.add_argument("--only", nargs="*", help="settings to run (default: all)")
    ap.add_argument("--set", action="append", default=[], help="a recipe change for every setting, key=value")
    a = ap.parse_args(argv)
    extract()
    classes = sorted(d.name for d in (EXTRACTED / "train").iterdir() if d.is_dir())
    if a.which == "policies":
        per = int(a.subset) if a.subset else 5000
        budget = a.budget or 480
        data = _link(WORK / f"augment-{per}", {c: per for c in classes}, 1000 if not a.subset else max(50, per // 5))
        name = "augment-cifar10" + ("-subset" if a.subset else "-30min" if budget == 1800 else "")
        every = {**{p: [f"augment.policy={p}"] for p in POLICIES}, **MIXES}
        settings = {k: v for k, v in every.items() if not a.only or k in a.only}
    else:
        share = a.subset or 1.0
        budget = a.budget or 480
        a.set = [*LONGTAIL_COMMON, *a.set]
        per = {c: max(1, int(5000 * share * 100 ** (-i / 9))) for i, c in enumerate(classes)}
        data = _link(WORK / f"longtail-{share:g}", per, 1000 if not a.subset else max(50, int(1000 * share)))
        name = "longtail-cifar10" + ("-subset" if a.subset else "")
        settings = {k: v for k, v in LONGTAIL.items() if not a.only or k in a.only}
    with Bench(name) as b:
        runs = {k: _train(data, f"{name}-{k}", budget, [*v, *a.set]) for k, v in settings.items()}
        b.figures.update(budget_seconds=budget, data=str(data), runs=runs, recipe_changes=a.set)
        if a.which == "policies":
            best = max(runs, key=lambda k: runs[k]["test_accuracy"])
            b.figures.update(best_policy=best, accuracy_best_policy=runs[best]["test_accuracy"])
            tried = [k for k in runs if k != "none"]
            if not a.subset and budget == 480 and "none" in runs and tried:
                # "above": at least one more test image of the 10,000 right than the default
                top = max(tried, key=lambda k: runs[k]["test_accuracy"])
                b.figures.update(best_policy_not_default=top)
                b.goal("accuracy_best_policy_8min_above_default", round(runs["none"]["test_accuracy"] + 1e-4, 4),
                       runs[top]["test_accuracy"])
            if not a.subset and budget == 1800:
                b.goal("accuracy_best_policy_30min", 0.92, runs[best]["test_accuracy"])
        else:
            b.figures["train_per_class"] = per
            best = max(runs, key=lambda k: runs[k]["test_balanced_accuracy"])
            b.figures.update(best_setting=best, balanced_accuracy_best=runs[best]["test_balanced_accuracy"])
            if not a.subset:
                b.goal("balanced_accuracy_best", 0.80, runs[best]["test_balanced_accuracy"])
        b.notes.append("test sets are balanced; one seed per setting; the machine's other load is not controlled")
    return 0


if __name__ == "__main__":
    sys.exit(main())

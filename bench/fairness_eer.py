"""Fairness of speaker verification on speechocean762 (issue 12's `fairness-speechocean762`): EER per age group
(child = age <= 15, adult; spk2age) and per gender, with 95% intervals from a bootstrap over test speakers, before
and after one mitigation, group-balanced sampling by age group.

Each condition trains seehear's `speakers` recipe (ECAPA-TDNN, AAM-softmax) twice with the same seed and budget:
baseline (train.sampler=none) and mitigated (train.sampler=group_balanced train.group_by=age_group). Conditions:
natural (the corpus's training set, children 46% of its speakers) and skewed (children kept for only 15% of the
training speakers, their gender mix kept, as bench/fairness_speechocean762.py builds it). Test: the corpus's 125
test speakers, never heard; trials within each group (the run's own metrics.json, `per_group_eer`), and the run's
overall EER over all test trials (the mean EER).

Goal (issue 12): eer_gap_reduction = 1 - gap_after / gap_before >= 0.30, at no more than 0.5 points of mean EER,
on the natural corpus; the skewed condition is reported beside it. gap = worst group's EER - best group's.

    .venv/bin/python bench/fairness_eer.py                   # ~30 min → bench/results/fairness-speechocean762.json
    .venv/bin/python bench/fairness_eer.py --limit small     # smoke, ~2 min → /tmp/seehear-bench/results/
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, Bench  # noqa: E402
from fairness_speechocean762 import CHILD_SHARE, corpus_rows, limit_small, skew, speakers_of, write_manifest  # noqa

BUDGET = 300  # training seconds per run: 4 runs of about 6.5 min with measuring, on 2 cores
GAP_GOAL, MEAN_COST_GOAL = 0.30, 0.005
MITIGATION = ["train.sampler=group_balanced", "train.group_by=age_group"]


def train_one(manifest: Path, out: Path, overrides: list[str], column: str) -> dict:
    import seehear

    t0 = time.time()
    res = seehear.train(str(manifest), str(out), overrides=[*overrides, f"speakers.fairness_by={column}"],
                        overwrite=True, progress=False)
    m = res.metrics
    return {"eer": m["eer"], "min_dcf": m["min_dcf"], "n_trials": m["n_trials"], "run": str(out),
            "run_seconds": round(time.time() - t0, 1), "train_seconds": res.meta["train"]["wall_seconds"],
            "epochs": res.meta["train"]["epochs_run"], "train_per_group": res.meta["data"].get("train_per_group"),
            "per_group_eer": m["per_group_eer"]}


def by_gender(run: Path, manifest_rows: list[dict]) -> dict:
    """The same run's EER per gender, from embeddings of the test utterances (seehear.tasks.speakers.embed)."""
    from seehear.evaluation.verification import group_eer
    from seehear.tasks.speakers import embed

    test = [r for r in manifest_rows if r["split"] == "test"]
    emb = embed(run, [r["path"] for r in test])
    return group_eer(emb, [r["speaker"] for r in test], [r["gender"] for r in test])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small", "full"], default="full")
    ap.add_argument("--budget", type=float, default=None, help=f"training seconds per run (default {BUDGET})")
    ap.add_argument("--conditions", default="natural,skewed")
    ap.add_argument("--no-gender", action="store_true", help="skip EER per gender (embeds the test set again)")
    a = ap.parse_args(argv)
    small = a.limit == "small"
    budget = a.budget or (8 if small else BUDGET)
    conditions = ["skewed"] if small else [c.strip() for c in a.conditions.split(",") if c.strip()]
    work = WORK / ("fairness-eer-small" if small else "fairness-eer")
    base = ["task=speakers", f"train.time_budget={budget}", "train.epochs=1000", "train.seed=0",
            *(["train.threads=1", "data.workers=1", "speakers.segment_seconds=1.5"] if small else
              ["train.threads=2"])]
    name = "fairness-speechocean762" + ("-small" if small else "")
    with Bench(name, results=WORK / "results" if small else None) as b:
        rows = corpus_rows()
        if small:
            rows = limit_small(rows)
        spk_test = speakers_of(rows, "test")
        b.figures.update({
            "task": "speaker verification (speakers recipe), EER per age group (child = age <= 15) on the 125 "
                    "unseen test speakers, trials within each group",
            "mitigation": " ".join(MITIGATION), "budget_seconds": budget, "seehear_overrides": base,
            "test": {"utterances": sum(r["split"] == "test" for r in rows), "speakers": len(spk_test),
                     "child_speakers": sum(v["age_group"] == "child" for v in spk_test.values())},
            "conditions": {}})
        for cond in conditions:
            crow = skew(rows, CHILD_SHARE) if cond == "skewed" else rows
            spk_train = speakers_of(crow, "train")
            man = write_manifest(crow, work / f"{cond}.csv")
            res: dict = {"train": {"speakers": len(spk_train), "child_speakers":
                                   sum(v["age_group"] == "child" for v in spk_train.values())}}
            for sampler, extra in (("baseline", []), ("group_balanced", MITIGATION)):
                print(f"== {cond}: {sampler}", file=sys.stderr, flush=True)
                r = train_one(man, work / "runs" / f"{cond}-{sampler}", [*base, *extra], "age_group")
                if not a.no_gender:
                    r["per_gender_eer"] = by_gender(Path(r["run"]), crow)
                res[sampler] = r
                print({k: r[k] for k in ("eer", "train_seconds", "epochs")},
                      {g: v.get("eer") for g, v in r["per_group_eer"]["per_group"].items()}, file=sys.stderr,
                      flush=True)
            g0, g1 = res["baseline"]["per_group_eer"].get("gap"), res["group_balanced"]["per_group_eer"].get("gap")
            res["gap_before"], res["gap_after"] = g0, g1
            res["eer_gap_reduction"] = round(1 - g1 / g0, 4) if g0 and g1 is not None else None
            res["mean_eer_increase"] = round(res["group_balanced"]["eer"] - res["baseline"]["eer"], 5)
            b.figures["conditions"][cond] = res
            if res["eer_gap_reduction"] is not None:
                suffix = "" if cond == "natural" else f"_{cond}"
                b.goal(f"eer_gap_reduction{suffix}", GAP_GOAL, res["eer_gap_reduction"])
                b.goal(f"mean_eer_increase{suffix}", MEAN_COST_GOAL, res["mean_eer_increase"],
                       higher_is_better=False)
        b.notes.append("gap = the worse age group's EER - the better one's, each over the trials within that group "
                       "(all same-speaker pairs, up to 50,000 different-speaker pairs); intervals: 1,000 "
                       "resamples of the group's test speakers; mean EER: the run's EER over all test trials")
        if small:
            b.notes.append("--limit small: a few speakers and seconds of training; checks the plumbing only")
    return 0


if __name__ == "__main__":
    sys.exit(main())

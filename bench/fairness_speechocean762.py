"""Fairness across age groups on speechocean762, by speaker-gender classification (the EER benchmark of issue 12
is bench/fairness_eer.py) (read English by 250 non-native speakers, half of them children;
CC BY 4.0, OpenSLR SLR101, Zhang et al. 2021), and one mitigation: group-balanced sampling.

Task (the fast one, chosen over ASR): speaker GENDER classification from one utterance (labels from spk2gender),
measured per AGE GROUP (child = age <= 15, adult; spk2age): children's voices are harder to tell apart by gender,
so the groups differ for a reason a model can partly learn. Per-group WER of the ASR task would take two 40-minute
trainings (bench/speechocean762_asr.py) for one comparison; this takes a few minutes per run. Train and test are
the corpus's own splits (125 speakers each, no speaker in both); validation is carved from train by speaker.

Each condition trains seehear's default audio recipe twice with the same seed, split and budget: baseline
(train.sampler=none) and mitigated (train.sampler=group_balanced, train.group_by=age_group: every age group drawn
equally often). Conditions: natural (the corpus's training set, children 46% of its speakers) and skewed (children
kept for only --child-share of the training speakers, gender mix kept: the under-represented-group case the
mitigation is for). Reported per run: accuracy per age group (and per age x gender cell), the gap (adult - child),
the mean accuracy (all test utterances, and the mean of the two groups), the worst group; with 95% intervals from
a bootstrap over TEST SPEAKERS within each age group (utterances of one speaker are not independent), and the
change baseline -> mitigated with paired intervals (the same resampled speakers for both runs). Training noise
between seeds is not in those intervals: --seeds N repeats everything per seed.

    .venv/bin/python bench/fairness_speechocean762.py                 # → bench/results/fairness-speechocean762-gender.json
    .venv/bin/python bench/fairness_speechocean762.py --limit small   # smoke, < 60 s → /tmp/seehear-bench/results/
    .venv/bin/python bench/fairness_speechocean762.py --conditions skewed --seeds 3 --budget 90   (dev runs)
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, WORK, Bench, need  # noqa: E402

CORPUS = DATA / "speechocean762"
CHILD_MAX_AGE = 15  # no speaker is 16-18: the corpus splits here
BUDGET = 120  # training seconds per run (4 runs: about 4 x 4 min with decoding, on 2 cores)
CHILD_SHARE = 0.15  # skewed condition: children's share of the training speakers
N_BOOT = 2000
COMMON = ["data.split_column=split", "data.split_by=speaker", "data.valid_fraction=0.05", "audio.clip_seconds=3.0"]
MITIGATION = ["train.sampler=group_balanced", "train.group_by=age_group"]
SMALL = {"train_speakers": 12, "test_speakers": 8, "utterances": 6, "budget": 4, "conditions": ["skewed"]}


def corpus_rows() -> list[dict]:
    """Every utterance with its speaker, gender, age and the corpus split, read through seehear's Kaldi source
    (spk2gender and spk2age become the columns gender and age)."""
    from seehear.data.sources import load_source

    rows = []
    for split in ("train", "test"):
        for r in load_source(need(CORPUS / split)).records:
            age = int(r.extra["age"])
            rows.append({"path": r.path, "speaker": r.group, "gender": r.extra["gender"], "age": age,
                         "age_group": "child" if age <= CHILD_MAX_AGE else "adult", "split": split})
    return rows


def speakers_of(rows, split) -> dict[str, dict]:
    return {r["speaker"]: {"gender": r["gender"], "age_group": r["age_group"]} for r in rows if r["split"] == split}


def skew(rows: list[dict], share: float, seed: int = 0) -> list[dict]:
    """Training rows with children cut to `share` of the training speakers (their gender mix kept); test kept."""
    spk = speakers_of(rows, "train")
    adults = [s for s, v in spk.items() if v["age_group"] == "adult"]
    want = round(share / (1 - share) * len(adults))
    rng = np.random.default_rng(seed)
    keep = set(adults)
    kids = {g: sorted(s for s, v in spk.items() if v["age_group"] == "child" and v["gender"] == g) for g in "fm"}
    n_kids = sum(len(v) for v in kids.values())
    for g, members in kids.items():
        k = max(1, round(want * len(members) / n_kids))
        keep |= set(rng.choice(members, size=min(k, len(members)), replace=False).tolist())
    return [r for r in rows if r["split"] == "test" or r["speaker"] in keep]


def limit_small(rows: list[dict]) -> list[dict]:
    """The smoke set: a few speakers of each age group and gender, a few utterances each."""
    out = []
    for split, n_spk in (("train", SMALL["train_speakers"]), ("test", SMALL["test_speakers"])):
        spk = speakers_of(rows, split)
        cells: dict = {}
        for s, v in sorted(spk.items()):
            cells.setdefault((v["age_group"], v["gender"]), []).append(s)
        chosen = {s for members in cells.values() for s in members[:n_spk // len(cells)]}
        seen: dict = {}
        for r in rows:
            if r["split"] == split and r["speaker"] in chosen and seen.get(r["speaker"], 0) < SMALL["utterances"]:
                seen[r["speaker"]] = seen.get(r["speaker"], 0) + 1
                out.append(r)
    return out


def write_manifest(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker", "age_group", "split"])
        for r in rows:
            w.writerow([r["path"], r["gender"], r["speaker"], r["age_group"], r["split"]])
    return path


def train_one(manifest: Path, out: Path, overrides: list[str]) -> dict:
    """A seehear run; per test speaker (correct, n) from its metrics (per_group is by speaker)."""
    import seehear

    t0 = time.time()
    res = seehear.train(str(manifest), str(out), overrides=overrides, overwrite=True, progress=False)
    per = res.metrics["per_group"]
    tr = res.meta["train"]
    return {"accuracy": res.metrics["accuracy"], "run": str(out), "run_seconds": round(time.time() - t0, 1),
            "train_seconds": tr["wall_seconds"], "epochs": tr["epochs_run"],
            "train_per_group": res.meta["data"].get("train_per_group"),
            "per_speaker": {s: (round(v["accuracy"] * v["n"]), v["n"]) for s, v in per.items()}}


def group_figures(correct: dict[str, float], n: dict[str, int], spk: dict[str, dict], speakers=None) -> dict:
    """Per age group accuracy, gap (adult - child), overall and group-mean accuracy, worst group, of the given
    speakers (default all; a list with repeats is a bootstrap resample)."""
    speakers = list(correct) if speakers is None else speakers
    tot: dict = {}
    for s in speakers:
        c, m = tot.setdefault(spk[s]["age_group"], [0.0, 0])
        tot[spk[s]["age_group"]] = [c + correct[s], m + n[s]]
    acc = {g: c / m for g, (c, m) in tot.items() if m}
    all_c, all_n = sum(v[0] for v in tot.values()), sum(v[1] for v in tot.values())
    return {"child": acc.get("child"), "adult": acc.get("adult"),
            "gap": acc["adult"] - acc["child"] if len(acc) == 2 else None, "accuracy": all_c / all_n,
            "group_mean": float(np.mean(list(acc.values()))), "worst": min(acc.values())}


def resamples(spk: dict[str, dict], speakers: list[str], n_boot: int, seed: int = 0) -> list[list[str]]:
    """Stratified cluster bootstrap: test speakers redrawn with replacement within each age group."""
    rng = np.random.default_rng(seed)
    by = {g: [s for s in speakers if spk[s]["age_group"] == g] for g in ("child", "adult")}
    return [[s for members in by.values() if members for s in rng.choice(members, len(members))]
            for _ in range(n_boot)]


def ci(vals) -> list[float] | None:
    vals = [v for v in vals if v is not None]
    return [round(float(np.quantile(vals, 0.025)), 4), round(float(np.quantile(vals, 0.975)), 4)] if vals else None


def compare(runs: dict[str, list[dict]], spk: dict[str, dict], n_boot: int) -> dict:
    """Figures per sampler (correct counts averaged over seeds) with speaker-bootstrap intervals, and the paired
    change baseline -> group_balanced."""
    def pooled(rs):
        correct = {s: float(np.mean([r["per_speaker"][s][0] for r in rs])) for s in rs[0]["per_speaker"]}
        return correct, {s: rs[0]["per_speaker"][s][1] for s in correct}

    pools = {name: pooled(rs) for name, rs in runs.items()}
    speakers = sorted(pools["baseline"][0])
    boots = resamples(spk, speakers, n_boot)
    out: dict = {}
    point, drawn = {}, {}
    for name, (c, n) in pools.items():
        point[name] = group_figures(c, n, spk)
        drawn[name] = [group_figures(c, n, spk, b) for b in boots]
        out[name] = {k: (None if v is None else round(v, 4)) for k, v in point[name].items()}
        out[name]["ci95"] = {k: ci([d[k] for d in drawn[name]]) for k in point[name]}
        out[name]["per_seed_accuracy"] = [round(r["accuracy"], 4) for r in runs[name]]
        out[name]["per_seed_gap"] = [None if g is None else round(g, 4) for g in
                                     (group_figures(*pooled([r]), spk)["gap"] for r in runs[name])]
    change = {}
    for k in ("gap", "accuracy", "group_mean", "worst", "child", "adult"):
        a, b = point["baseline"][k], point["group_balanced"][k]
        if a is None or b is None:
            continue
        deltas = [(y[k] - x[k]) if x[k] is not None and y[k] is not None else None
                  for x, y in zip(drawn["baseline"], drawn["group_balanced"])]
        change[k] = {"delta": round(b - a, 4), "ci95": ci(deltas)}
    out["change_baseline_to_group_balanced"] = change
    return out


def utterance_level(rs: list[dict], spk: dict[str, dict]) -> dict:
    """seehear.trust.fairness's own per-group table of the first seed (accuracy and UAR with speaker-level cluster
    bootstrap intervals, as `seehear report --fairness-by` computes them), rebuilt per utterance from the
    per-speaker counts (exact: two classes, one gender per speaker)."""
    from seehear.trust.fairness import fairness_report

    y, pred, groups, cells, who = [], [], [], [], []
    for s, (c, n) in sorted(rs[0]["per_speaker"].items()):
        g = spk[s]["gender"]
        other = "m" if g == "f" else "f"
        y += [g] * n
        pred += [g] * c + [other] * (n - c)
        groups += [spk[s]["age_group"]] * n
        cells += [f"{spk[s]['age_group']}-{g}"] * n
        who += [s] * n
    return {"by_age_group": fairness_report(y, pred, groups, "age_group", clusters=who),
            "by_age_and_gender": fairness_report(y, pred, cells, "age_group-gender",
                                                 clusters=who)["accuracy"]["per_group"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small", "full"], default="full",
                    help="small: a few speakers, seconds of training, the skewed condition only (smoke, < 60 s; "
                         "written under /tmp, never to bench/results)")
    ap.add_argument("--budget", type=float, help=f"training seconds per run (default {BUDGET}; small: "
                                                  f"{SMALL['budget']})")
    ap.add_argument("--conditions", default="natural,skewed", help="natural, skewed or both (default both)")
    ap.add_argument("--child-share", type=float, default=CHILD_SHARE,
                    help="skewed: children's share of the training speakers (default %(default)s)")
    ap.add_argument("--seeds", type=int, default=1, help="repeat each run with seeds 0..N-1 (default 1)")
    ap.add_argument("--set", action="append", default=[], help="extra seehear override key=value (dev)")
    a = ap.parse_args(argv)
    small = a.limit == "small"
    budget = a.budget or (SMALL["budget"] if small else BUDGET)
    conditions = SMALL["conditions"] if small else [c.strip() for c in a.conditions.split(",") if c.strip()]
    work = WORK / ("fairness-so762-small" if small else "fairness-so762")
    threads = ["train.threads=1", "data.workers=1"] if small else ["train.threads=2"]
    name = "fairness-speechocean762-gender" + ("-small" if small else "")

    with Bench(name, results=WORK / "results" if small else None) as b:
        rows = corpus_rows()
        if small:
            rows = limit_small(rows)
        spk_test = speakers_of(rows, "test")
        b.figures.update({
            "task": "speaker gender classification (f/m, from spk2gender) from one utterance, per age group "
                    f"(child = age <= {CHILD_MAX_AGE}, adult); chosen over per-group ASR WER, which needs two "
                    "40-minute trainings per comparison",
            "mitigation": " ".join(MITIGATION), "limit": a.limit, "budget_seconds": budget, "seeds": a.seeds,
            "seehear_overrides": COMMON + threads + a.set, "bootstrap": f"{N_BOOT} resamples of test speakers "
                                                                        "within each age group, paired across runs",
            "test": {"utterances": sum(r["split"] == "test" for r in rows), "speakers": len(spk_test),
                     "child_speakers": sum(v["age_group"] == "child" for v in spk_test.values())},
            "conditions": {}})
        for cond in conditions:
            if cond not in ("natural", "skewed"):
                sys.exit(f"bench: unknown condition {cond!r}: use natural and/or skewed")
            crow = skew(rows, a.child_share) if cond == "skewed" else rows
            spk_train = speakers_of(crow, "train")
            man = write_manifest(crow, work / f"{cond}.csv")
            runs: dict[str, list[dict]] = {"baseline": [], "group_balanced": []}
            for seed in range(a.seeds):
                for sampler, extra in (("baseline", []), ("group_balanced", MITIGATION)):
                    print(f"== {cond}: {sampler}, seed {seed}", file=sys.stderr, flush=True)
                    over = [*COMMON, *threads, f"train.time_budget={budget}", f"train.seed={seed}", *extra, *a.set]
                    r = train_one(man, work / "runs" / f"{cond}-{sampler}-s{seed}", over)
                    print({k: v for k, v in r.items() if k != "per_speaker"}, file=sys.stderr, flush=True)
                    runs[sampler].append(r)
            res = compare(runs, spk_test, N_BOOT)
            res["train"] = {"utterances": sum(r["split"] == "train" for r in crow), "speakers": len(spk_train),
                            "child_speakers": sum(v["age_group"] == "child" for v in spk_train.values()),
                            "child_share_of_speakers": round(sum(v["age_group"] == "child" for v in
                                                                 spk_train.values()) / len(spk_train), 3)}
            res["runs"] = {k: [{x: y for x, y in r.items() if x != "per_speaker"} for r in v] for k, v in runs.items()}
            res["utterance_level"] = {k: utterance_level(v, spk_test) for k, v in runs.items()}
            b.figures["conditions"][cond] = res
            ch = res["change_baseline_to_group_balanced"]
            print(f"{cond}: gap {res['baseline']['gap']} -> {res['group_balanced']['gap']} "
                  f"(delta {ch.get('gap')}); accuracy {res['baseline']['accuracy']} -> "
                  f"{res['group_balanced']['accuracy']}", file=sys.stderr, flush=True)
        b.notes.append("gap = adult accuracy - child accuracy on the test speakers (positive: children worse); "
                       "accuracy = over all test utterances; group_mean = mean of the two groups' accuracies")
        b.notes.append("with --seeds > 1, each speaker's correct count is averaged over the seeds before the "
                       "bootstrap; per_seed_* show the spread between trainings")
        if small:
            b.notes.append("--limit small: a few speakers and seconds of training; checks the plumbing, not the "
                           "effect")
    return 0


if __name__ == "__main__":
    sys.exit(main())

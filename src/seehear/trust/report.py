"""`seehear report RUN DATA`: every trust measurement of a classification run on labelled data, into
RUN/trust.json and RUN/trust/*.png, and a Trust section in RUN/report.html.

Which examples: when DATA is the data the run was trained on (its split.json matches), the run's own validation
split fits the temperature and its test split is measured; any other DATA is measured whole, and calibration
uses the temperature the run already has (none fitted: nothing held out to fit it on).
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from seehear.data.cache import decode_all
from seehear.data.groups import column_values
from seehear.data.sources import load_source
from seehear.data.splits import load_splits
from seehear.engine.checkpoint import read_json, write_json
from seehear.engine.run_folder import load_run
from seehear.engine.trainer import set_threads
from seehear.errors import DataError, InputMismatchError, RunError
from seehear.trust.calibration import calibrate, ece_nll, reliability_pair
from seehear.trust.common import batched_logits
from seehear.trust.explain import require_gradients

MAX_FAITHFUL = 64  # test examples whose deletion/insertion curves are measured
PER_PANEL = 4


def _fairness_groups(records, asked: str | None, balanced_by: str | None) -> tuple[str | None, list | None]:
    """(column, each test record's group): the column asked for (one the data lacks is an error, now rather than
    after the other measurements), else the one the run balanced its sampling by (train.group_by) where this data
    has it, else the data's group (speaker), if any."""
    if asked:
        return asked, column_values(records, asked, "--fairness-by")
    if balanced_by:
        try:
            return balanced_by, column_values(records, balanced_by, "train.group_by")
        except DataError:
            pass
    return ("group", column_values(records, "group")) if any(r.group for r in records) else (None, None)


def _pick_examples(probs: torch.Tensor, y: torch.Tensor) -> dict[str, list[int]]:
    """Rows to explain: the most and least confident, and the most confident mistakes (worst confusions)."""
    conf, pred = probs.max(1)
    order = torch.argsort(conf, descending=True).tolist()
    wrong = [i for i in order if pred[i] != y[i]]
    return {"most confident": order[:PER_PANEL], "least confident": order[::-1][:PER_PANEL],
            "worst confusions": wrong[:PER_PANEL]}


def _split(run_dir: Path, records, keep: list[int]) -> tuple[list[int], list[int], str]:
    """(valid rows, test rows, what they are) as rows of the decoded tensor."""
    row = {rec: r for r, rec in enumerate(keep)}
    split_file = run_dir / "split.json"
    if split_file.is_file():
        try:
            s = load_splits(records, split_file)
        except DataError:
            s = None
        if s and (s.get("test") or s.get("valid")):
            valid = [row[i] for i in s.get("valid", []) if i in row]
            test_name = "test" if s.get("test") else "valid"
            test = [row[i] for i in s.get(test_name, []) if i in row]
            return valid, test, f"the run's {test_name} split"
    return [], list(range(len(keep))), "all of DATA (not the run's own data, or no saved split)"


def trust_report(run, data, *, robustness: bool = False, adversarial: bool = False, fairness_by: str | None = None,
                 method: str = "gradcam", label_pattern: str | None = None, out=None, progress: bool = False,
                 robust_examples: int = 1000, adversarial_examples: int = 256, seed: int = 0) -> dict:
    """Measure and write OUT/trust.json and OUT/trust/*.png (OUT: the run folder unless given), and, in the run
    folder, report.html with its Trust section; returns what trust.json holds. Corruptions and attacks run on a
    random sample of robust_examples / adversarial_examples test inputs, which bounds their time on a CPU."""
    require_gradients(run)
    loaded = load_run(run)
    run_dir = loaded.run_dir
    if loaded.modality == "audio-image":
        raise RunError(f"{run} is an audio-image run: `seehear report` measures single-input runs; its metrics.json "
                       f"has the fused, image-alone and audio-alone accuracy")
    if loaded.meta.get("task", "classify") != "classify":
        raise RunError(f"{run} is a {loaded.meta.get('task')} run; `seehear report` measures classification runs")
    if loaded.modality == "frames":
        raise RunError(f"{run} recognises image sequences: trust reports and explanations are for images and audio "
                       f"so far (its report.html and metrics.json hold its accuracy)")
    source = load_source(data, label_pattern=label_pattern or loaded.cfg.data.label_pattern)
    if source.modality != loaded.modality:
        raise InputMismatchError(f"{run} recognises {loaded.modality}, but {data} holds {source.modality}")
    unknown = sorted({r.label for r in source.records if r.label is not None} - set(loaded.labels))
    if unknown or not any(r.label for r in source.records):
        raise DataError(f"{data}: labels the model never learned: {', '.join(unknown[:10])}" if unknown else
                        f"{data} has no labels to measure against")
    set_threads(loaded.cfg)
    t0 = time.time()
    decoded = decode_all(source.records, loaded.cfg, loaded.modality, workers=loaded.cfg.data.workers,
                         progress=progress)
    if not decoded.keep:
        raise DataError(f"no file in {data} could be decoded ({len(decoded.skipped)} skipped)")
    recs = [source.records[i] for i in decoded.keep]
    lab = {l: i for i, l in enumerate(loaded.labels)}
    y_all = torch.tensor([lab[r.label] for r in recs])
    valid, test, what = _split(run_dir, source.records, decoded.keep)
    if not test:
        raise DataError(f"nothing to measure in {data}: its examples are all in the run's training split")
    groups_col, groups = _fairness_groups([recs[i] for i in test], fairness_by, loaded.cfg.train.group_by)
    model = loaded.model.float()
    seconds: dict[str, float] = {}

    @contextmanager
    def clock(stage: str):
        t = time.time()
        yield
        seconds[stage] = round(time.time() - t, 1)
        if progress:
            print(f"trust: {stage} {seconds[stage]:.1f} s", file=sys.stderr, flush=True)

    dest = Path(out) if out else run_dir
    out_dir = dest / "trust"
    trust: dict = {"run": str(run_dir), "data": str(Path(data).resolve()), "measured_on": what, "n": len(test),
                 "skipped": len(decoded.skipped), "modality": loaded.modality}
    xt, yt = decoded.x[test], y_all[test]

    # calibration: the run's temperature if it has one, else fitted now on the validation split and kept
    with clock("calibration"):
        cal = loaded.meta.get("calibration")
        if not cal and valid:
            cal = calibrate(model, decoded.x[valid], y_all[valid])
            cal["fitted_on"] = "valid"
            write_json(run_dir / "meta.json", {**read_json(run_dir / "meta.json"), "calibration": cal})
        elif not cal:
            cal = {"skipped": "no validation split of this run in DATA: no temperature fitted (T = 1)",
                   "temperature": float(model.temperature)}
        raw = batched_logits(model, xt, raw=True)
        t = float(model.temperature)
        (e0, n0), (e1, n1) = ece_nll(raw, yt), ece_nll(raw / t, yt)
        trust["calibration"] = {**cal, "test": {"ece_before": e0, "nll_before": n0, "ece_after": e1, "nll_after": n1}}
        reliability_pair(raw, yt, t, out_dir / "reliability_before_after.png")
    probs = torch.softmax(raw / t, 1)
    pred = probs.argmax(1)
    trust["accuracy"] = float((pred == yt).float().mean())

    with clock("explanations"):
        trust["explanations"] = _explanations(model, xt, yt, probs, method, out_dir, loaded, recs, test, seed)
    g = torch.Generator().manual_seed(seed)
    if robustness:
        from seehear.trust.plots import plot_robustness
        from seehear.trust.robustness import robustness_eval

        idx = torch.randperm(len(test), generator=g)[:robust_examples]
        with clock("robustness"):
            r = robustness_eval(model, xt[idx], yt[idx], sample_rate=loaded.cfg.audio.sample_rate, seed=seed)
        r["png"] = str(plot_robustness(r, out_dir / "corruptions.png"))
        trust["robustness"] = r
    if adversarial:
        from seehear.trust.attacks import adversarial_eval
        from seehear.trust.plots import plot_adversarial

        idx = torch.randperm(len(test), generator=g)[:adversarial_examples]
        with clock("adversarial"):
            a = adversarial_eval(model, xt[idx], yt[idx], seed=seed)
        a["png"] = str(plot_adversarial(a, out_dir / "adversarial.png"))
        trust["adversarial"] = a
    if groups_col:
        from seehear.trust.fairness import fairness_report

        with clock("fairness"):
            # by gender or age, a speaker's utterances move together: resample speakers, not utterances
            test_recs = [recs[i] for i in test]
            spk = ([r.group for r in test_recs] if groups_col != "group" and all(r.group for r in test_recs)
                   else None)
            trust["fairness"] = fairness_report(yt.numpy(), pred.numpy(), groups, groups_col, seed=seed,
                                                clusters=spk)
    with clock("embeddings"):
        trust["embeddings"] = _safe(lambda: _embeddings(model, xt, yt, pred, out_dir, seed))
    with clock("label_issues"):
        trust["label_issues"] = _label_issues(yt, probs, [recs[i].key for i in test], xt, loaded, out_dir)
    trust["seconds"], trust["stage_seconds"] = round(time.time() - t0, 1), seconds
    write_json(dest / "trust.json", trust)
    if dest.resolve() == run_dir.resolve():
        from seehear.evaluation.report import write_report

        write_report(run_dir)
    return trust


def _safe(fn):
    """A map that cannot be drawn (too few points, a degenerate embedding) is a note, not a failed report."""
    try:
        return fn()
    except (ValueError, np.linalg.LinAlgError) as e:
        return {"skipped": f"{type(e).__name__}: {str(e)[:160]}"}


def _embeddings(model, xt, yt, pred, out_dir, seed):
    from seehear.trust.embeddings import embedding_maps

    return embedding_maps(model, xt, yt, pred, out_dir, seed)


def _explanations(model, xt, yt, probs, method, out_dir, loaded, recs, test, seed) -> dict:
    from seehear.trust.attribution import attribute
    from seehear.trust.explain import explain_tensors
    from seehear.trust.faithfulness import deletion_insertion
    from seehear.trust.plots import plot_overlays

    picks = _pick_examples(probs, yt)
    rows = sorted({i for v in picks.values() for i in v})
    e = explain_tensors(model, xt[rows], method)
    at = {r: k for k, r in enumerate(rows)}
    res: dict = {"method": e["method"], "panels": {}}
    if e["note"]:
        res["note"] = e["note"]
    audio = loaded.modality == "audio"
    for name, idx in picks.items():
        if not idx:
            continue
        k = [at[i] for i in idx]
        items = [e["features"][j, 0].numpy() if audio else xt[i].numpy() for j, i in zip(k, idx)]
        titles = [f"{loaded.labels[int(yt[i])]} → {loaded.labels[int(e['target'][j])]} "
                  f"{float(probs[i].max()):.2f}" for j, i in zip(k, idx)]
        png = plot_overlays(items, [e["maps"][j].numpy() for j in k], titles, loaded.modality,
                            out_dir / f"explain_{name.replace(' ', '_')}.png")
        res["panels"][name] = {"png": str(png), "files": [recs[test[i]].key for i in idx]}
    # faithfulness on a sample: the maps' deletion/insertion curves against a random ranking
    idx = torch.randperm(len(yt), generator=torch.Generator().manual_seed(seed))[:MAX_FAITHFUL]
    maps, tgt, _, _ = attribute(model, xt[idx], method=e["method"])
    res["faithfulness"] = deletion_insertion(model, xt[idx], tgt, maps, seed=seed)
    return res


def _label_issues(yt, probs, keys, xt, loaded, out_dir) -> dict:
    from seehear.trust.label_issues import label_issue_rows
    from seehear.trust.plots import plot_thumbnails

    r = label_issue_rows(keys, yt.numpy(), probs.numpy(), loaded.labels)
    shown = r["listed"][:12]
    if shown:
        if loaded.modality == "image":
            items = [xt[row["index"]].numpy() for row in shown]
        else:
            from seehear.trust.attribution import features_of

            items = [features_of(loaded.model, xt[row["index"]:row["index"] + 1])[0, 0].cpu().numpy()
                     for row in shown]
        titles = [f"{Path(row['file'].split('#')[0]).name[:18]}\nsays {row['given']}, looks {row['predicted']}"
                  for row in shown]
        r["png"] = str(plot_thumbnails(items, titles, loaded.modality, out_dir / "label_issues.png"))
    return r


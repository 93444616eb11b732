"""The Python API; the CLI is a thin front over these functions.

    import seehear
    result = seehear.train("data/words", out="runs/words", label_pattern=r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_",
                           split_by="speaker")
    print(result.metrics["accuracy"])
    seehear.predict("runs/words", ["clip.wav"])
"""
from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from seehear.config import RunConfig
from seehear.data.cache import decode_all
from seehear.data.check import check_data as _check_data
from seehear.data.records import Source
from seehear.data.sources import list_files, load_source, require_trainable
from seehear.data.splits import find_leakage, load_splits, make_splits, save_splits
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import read_json, write_json
from seehear.engine.trainer import fit, predict_probs, set_threads
from seehear.errors import ConfigError, DataError, InputMismatchError, RunError
from seehear.models.recognizer import build_recognizer, input_spec
from seehear.recipes import deep_merge, pick_recipe, resolve

load_run = rf.load_run


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict  # on the test split (or valid when there is no test split)
    meta: dict

    @property
    def accuracy(self) -> float:
        return self.metrics.get("accuracy", float("nan"))


def check_data(path, *, label_pattern: str | None = None, modality: str = "auto", out: str | None = None) -> dict:
    report = _check_data(path, label_pattern=label_pattern, modality=modality)
    if out:
        write_json(out, report)
    return report


def _auto_settings(source: Source) -> tuple[str, dict]:
    """Recipe and input settings read off a sample of the data (user settings still win over these)."""
    recs = source.records[:: max(1, len(source.records) // 64)][:64]
    if source.modality == "image":
        from PIL import Image

        sides = []
        for r in recs:
            if r.member is not None:
                sides.append(28)  # IDX digits
                continue
            try:
                with Image.open(r.path) as im:
                    sides.append(min(im.size))
            except Exception:
                continue
        return pick_recipe("image", statistics.median(sides) if sides else None), {}
    import soundfile as sf

    durs = []
    for r in recs:
        try:
            durs.append(sf.info(r.path).duration)
        except Exception:
            continue
    auto: dict[str, Any] = {}
    if durs:  # cover 90% of clips whole, in quarter seconds, within 1..8 s
        p90 = float(np.percentile(durs, 90))
        auto = {"audio": {"clip_seconds": float(min(8.0, max(1.0, np.ceil(p90 * 4) / 4)))}}
    return pick_recipe("audio"), auto


def _user_settings(config) -> dict:
    """Only what the user set, so that everything else still comes from the recipe."""
    if isinstance(config, RunConfig):
        return config.to_dict()
    if isinstance(config, dict):
        RunConfig.from_dict(config)  # validate names and types now, with a clear message
        return config
    if config:
        RunConfig.from_yaml(config)
        import yaml

        return yaml.safe_load(Path(config).read_text()) or {}
    return {}


def _resolve_config(source: Source, user: dict, overrides: Sequence[str]) -> tuple[RunConfig, str]:
    recipe, auto = _auto_settings(source)
    cfg = resolve(recipe, deep_merge(auto, user), list(overrides))
    cfg.modality = source.modality
    return cfg, recipe


def _prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "config.yaml").is_file():
            raise RunError(f"nothing to resume in {out}: no config.yaml there (start the run without --resume)")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunError(f"{out} already holds a run: use --resume to continue it, --overwrite to replace it, "
                           f"or another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def train(data, out, *, config=None, model: str | None = None, epochs: int | None = None,
          time_budget: float | None = None, label_pattern: str | None = None, split_by: str | None = None,
          overrides: Sequence[str] = (), resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> TrainResult:
    """Train a recognizer on DATA and write a complete run folder to OUT; returns its test metrics.

    The task (config `task`, or `task=...` in overrides) picks what is learned: classify (a label per clip, the
    default), transcribe (speech to text, seehear.tasks.transcribe) or speakers (speaker embeddings,
    seehear.tasks.speakers)."""
    task = _task_of(config, overrides, Path(out), resume)
    if task != "classify":
        import importlib

        mod = importlib.import_module(f"seehear.tasks.{task}")
        if split_by:
            overrides = [*overrides, f"data.split_by={split_by}"]
        return mod.train(data, out, config=config, model=model, epochs=epochs, time_budget=time_budget,
                         overrides=overrides, resume=resume, overwrite=overwrite, progress=progress,
                         label_pattern=label_pattern)
    out = Path(out)
    _prepare_run_dir(out, resume, overwrite)
    named: dict[str, dict] = {"model": {"name": model}, "train": {"epochs": epochs, "time_budget": time_budget},
                              "data": {"label_pattern": label_pattern, "split_by": split_by}}
    named = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in named.items()}
    named = {k: v for k, v in named.items() if v}
    if resume:  # the run's own settings, so the continued run is the same run
        cfg = RunConfig.from_yaml(out / "config.yaml")
        recipe = read_json(out / "meta.json").get("recipe", "?")
        pattern = cfg.data.label_pattern
    else:
        user = deep_merge(_user_settings(config), named)
        pattern = label_pattern or (user.get("data") or {}).get("label_pattern")
    source = load_source(data, label_pattern=pattern)
    require_trainable(source)
    if not resume:
        cfg, recipe = _resolve_config(source, user, overrides)
    records = source.records
    d = cfg.data
    splits = splits_for(records, cfg, out / "split.json", resume)
    leaks = find_leakage(records, splits)
    set_threads(cfg)

    decoded = decode_all(records, cfg, source.modality, workers=d.workers, progress=progress)
    labels = source.labels
    lab_idx = {l: i for i, l in enumerate(labels)}
    row = {rec_i: row_i for row_i, rec_i in enumerate(decoded.keep)}
    y_all = torch.tensor([lab_idx[r.label] for r in records], dtype=torch.long)

    def part(name):
        idx = [row[i] for i in splits.get(name, []) if i in row]
        ridx = [i for i in splits.get(name, []) if i in row]
        return decoded.x[idx], y_all[ridx], ridx

    (xtr, ytr, _), (xva, yva, _), (xte, yte, ite) = part("train"), part("valid"), part("test")
    if len(ytr) == 0:
        raise DataError(f"no training examples could be decoded from {data} "
                        f"({len(decoded.skipped)} files skipped; see `seehear data check {data}`)")
    norm = None
    if source.modality == "image":
        from seehear.features.image import channel_stats

        mean, std = channel_stats(xtr)
        norm = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    net = build_recognizer(cfg, labels, source.modality, norm)

    if not resume:
        cfg.to_yaml(out / "config.yaml")
    write_json(out / "skipped.json", [list(s) for s in decoded.skipped])
    counts = {k: len(v) for k, v in splits.items()}
    meta = {"status": "training", "created": rf.now(), "recipe": recipe, "modality": source.modality,
            "labels": labels, "config": cfg.to_dict(), "input": input_spec(cfg, source.modality),
            "norm_stats": norm, "model": {"name": cfg.model.name, "kwargs": cfg.model.kwargs,
                                          "params": sum(p.numel() for p in net.parameters())},
            "data": {"source": str(Path(data).resolve()), "kind": source.kind, "counts": counts,
                     "skipped": len(decoded.skipped), "leakage": len(leaks),
                     "fingerprint": rf.fingerprint([r.key for r in records])},
            "versions": rf.versions(), "machine": rf.machine(), "command": rf.describe_command()}
    rf.write_meta(out, meta)

    info = fit(net, cfg, (xtr, ytr), (xva, yva) if len(yva) else None, out, resume=resume, progress=progress)
    rf.save_model(out, net)

    from seehear.evaluation import compute_metrics, plot_confusion, plot_curves, plot_reliability, write_report

    split_name, (xe, ye, ie) = ("test", (xte, yte, ite)) if len(yte) else ("valid", part("valid"))
    metrics: dict = {}
    if len(ye):
        probs = predict_probs(net, xe, precision=cfg.train.precision).numpy()
        groups = [records[i].group for i in ie] if any(records[i].group for i in ie) else None
        metrics[split_name] = compute_metrics(ye.numpy(), probs, labels, groups)
        plot_confusion(metrics[split_name], out / "confusion.png")
        plot_reliability(probs, ye.numpy(), out / "reliability.png")
    metrics["leakage"] = [list(p) for p in leaks[:50]]
    write_json(out / "metrics.json", metrics)
    csv = out / "logs" / "metrics.csv"
    if csv.is_file():
        plot_curves(csv, out / "curves.png")
    meta.update(status="done", finished=rf.now(), train=info, evaluated_on=split_name)
    rf.write_meta(out, meta)
    write_report(out)
    return TrainResult(out, metrics.get(split_name, {}), meta)


def splits_for(records, cfg: RunConfig, split_path: Path, resume: bool) -> dict:
    """The run's train/valid/test split: the saved one when resuming, else made per cfg.data and saved."""
    d = cfg.data
    if resume and split_path.is_file():
        return load_splits(records, split_path)
    column = d.split_column
    given = {r.split for r in records}
    if column is None and not d.split_by and not d.test_files and "train" in given and given & {"test", "valid"}:
        column = "split"  # the data says its own split (train/ and test/ folders, a split column): keep it
    splits = make_splits(records, by=d.split_by, column=column, test_files=d.test_files,
                         valid_fraction=d.valid_fraction, valid_max=d.valid_max, test_fraction=d.test_fraction,
                         seed=cfg.train.seed)
    save_splits(records, splits, split_path)
    return splits


TASKS = ("classify", "transcribe", "speakers")


def _run_task(run) -> str:
    f = Path(run) / "meta.json"
    try:
        return read_json(f).get("task", "classify") if f.is_file() else "classify"
    except Exception:
        return "classify"  # load_run reports a damaged meta.json properly


def _task_of(config, overrides: Sequence[str], out: Path, resume: bool) -> str:
    """The task a train call asks for: --set task=..., else the config's, else the resumed run's, else classify."""
    task = None
    for a in overrides:
        if a.split("=", 1)[0].strip() == "task":
            task = a.split("=", 1)[1].strip()
    if task is None:
        user = _user_settings(config)
        task = user.get("task") if isinstance(user, dict) else None
    if task is None and resume and (out / "config.yaml").is_file():
        task = RunConfig.from_yaml(out / "config.yaml").task
    task = task or "classify"
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task


def _decode_for(loaded: rf.LoadedRun, source: Source, progress: bool):
    if source.modality != loaded.modality:
        raise InputMismatchError(f"{loaded.run_dir} recognises {loaded.modality}, but the input is "
                                 f"{source.modality}: give it {loaded.modality} files")
    return decode_all(source.records, loaded.cfg, loaded.modality, workers=loaded.cfg.data.workers,
                      progress=progress)


def evaluate(run, data, *, label_pattern: str | None = None, out: str | Path | None = None,
             progress: bool = True) -> dict:
    """Metrics of a trained run on other labelled data; writes metrics.json and confusion.png to OUT.
    Transcription runs are measured by WER/CER (seehear.tasks.transcribe.evaluate)."""
    if _run_task(run) == "transcribe":
        from seehear.tasks.transcribe import evaluate as evaluate_transcripts

        return evaluate_transcripts(run, data, out=out, progress=progress)
    loaded = load_run(run)
    pattern = label_pattern or loaded.cfg.data.label_pattern
    source = load_source(data, label_pattern=pattern)
    unknown = sorted(set(source.labels) - set(loaded.labels))
    if unknown:
        raise DataError(f"{data} has labels the model never learned: {', '.join(unknown[:10])}; "
                        f"the model knows {', '.join(loaded.labels[:20])}")
    set_threads(loaded.cfg)
    decoded = _decode_for(loaded, source, progress)
    idx = {l: i for i, l in enumerate(loaded.labels)}
    y = np.array([idx[source.records[i].label] for i in decoded.keep])
    probs = predict_probs(loaded.model, decoded.x, precision=loaded.cfg.train.precision).numpy()
    groups = [source.records[i].group for i in decoded.keep]
    from seehear.evaluation import compute_metrics, plot_confusion

    m = compute_metrics(y, probs, loaded.labels, groups if any(groups) else None)
    m["skipped"] = [list(s) for s in decoded.skipped]
    out = Path(out) if out else Path(run) / "eval" / Path(str(data)).resolve().name
    write_json(out / "metrics.json", m)
    plot_confusion(m, out / "confusion.png")
    m["out"] = str(out)
    return m


def predict(run, inputs: str | Path | Sequence[str | Path], *, top_k: int = 3, progress: bool = False) -> list[dict]:
    """Top-k labels with probabilities for files or folders of files; unreadable files get an `error` entry."""
    if _run_task(run) != "classify":
        raise RunError(f"{run} is a {_run_task(run)} run: use `seehear transcribe` or `seehear speakers` with it")
    loaded = load_run(run)
    paths = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(p) for p in inputs]
    source = list_files(paths)
    set_threads(loaded.cfg)
    decoded = _decode_for(loaded, source, progress)
    probs = (predict_probs(loaded.model, decoded.x, precision=loaded.cfg.train.precision) if decoded.keep
             else torch.zeros(0, len(loaded.labels)))
    k = max(1, min(top_k, len(loaded.labels)))
    rows: list[dict] = []
    top = torch.topk(probs, k, dim=1) if len(probs) else None
    for j, i in enumerate(decoded.keep):
        rows.append({"file": source.records[i].key, "label": loaded.labels[int(top.indices[j, 0])],
                     "probability": round(float(top.values[j, 0]), 4),
                     "top": [{"label": loaded.labels[int(c)], "probability": round(float(p), 4)}
                             for p, c in zip(top.values[j], top.indices[j])]})
    for key, reason in decoded.skipped:
        rows.append({"file": key, "error": reason})
    return rows

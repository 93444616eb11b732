"""The run lifecycle every task shares, and the contract a task fills in.

    settings → run folder → data and split → model → fit → measure → files

`train_task(task, data, out, ...)` owns the order and everything that is the same for every task: the run folder
(safe --overwrite, --resume), config.yaml, meta.json (status training → done, versions, machine, command),
skipped.json, model.safetensors, metrics.json and report.html. A task (tasks/classify.py, transcribe.py,
speakers.py) subclasses `Task` and says only what differs:

    load(data, label_pattern, modality)  -> Source                   which records, with what labels
    resolve(source, user, overrides)     -> (RunConfig, recipe)      the settings for this data
    prepare(source, cfg, out, resume)    -> Prepared                 split, decode, model, loaders
    fit(prepared, cfg, out, resume)      -> dict                     train (engine.trainer.fit_module)
    measure(prepared, cfg, out)          -> (split, metrics)         on held-out data
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from seehear.atomic import write_json
from seehear.config import RunConfig
from seehear.data.records import Source
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import read_json
from seehear.engine.trainer import pick_device, pick_devices, set_threads
from seehear.recipes import deep_merge, user_settings


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict  # on the test split (or valid when there is no test split)
    meta: dict

    @property
    def accuracy(self) -> float:
        return self.metrics.get("accuracy", float("nan"))


@dataclass
class Prepared:
    """What a task's prepare() hands to its fit() and measure()."""
    model: nn.Module
    meta: dict  # the task's part of meta.json: labels, input, data counts, ...
    skipped: list = field(default_factory=list)  # (key, reason) of files that could not be used
    state: dict = field(default_factory=dict)  # loaders, tensors, anything fit/measure need


class Task:
    name = "classify"

    def load(self, data, label_pattern: str | None, modality: str = "auto") -> Source:
        """The records of DATA. modality: what the run names (--modality, config `modality`; auto: detected); a
        task that reads one kind of data may ignore it, train_task checks that the source is of that kind."""
        raise NotImplementedError

    def resolve(self, source: Source, user: dict, overrides: Sequence[str]) -> tuple[RunConfig, str]:
        raise NotImplementedError

    def prepare(self, source: Source, cfg: RunConfig, out: Path, resume: bool, progress: bool) -> Prepared:
        raise NotImplementedError

    def fit(self, p: Prepared, cfg: RunConfig, out: Path, resume: bool, progress: bool) -> dict:
        raise NotImplementedError

    def measure(self, p: Prepared, cfg: RunConfig, out: Path) -> tuple[str, dict]:
        raise NotImplementedError

    def finished(self, p: Prepared, metrics: dict) -> dict:
        """Extra meta.json fields once measured (e.g. a verification threshold)."""
        return {}


def named_settings(model=None, epochs=None, time_budget=None, label_pattern=None, split_by=None) -> dict:
    """The train() arguments that are settings, as a partial config (only those given)."""
    named = {"model": {"name": model}, "train": {"epochs": epochs, "time_budget": time_budget},
             "data": {"label_pattern": label_pattern, "split_by": split_by}}
    named = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in named.items()}
    return {k: v for k, v in named.items() if v}


def train_task(task: Task, data, out, *, config=None, named: dict | None = None, overrides: Sequence[str] = (),
               resume: bool = False, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Train `task` on DATA into the run folder OUT; returns its held-out metrics.

    Data parallel (train.devices > 1, or under torchrun): rank 0 alone writes the run folder; the other ranks do
    the same work in a scratch folder (engine/run_folder.rank_scratch) and return after training."""
    rank = rf.process_rank()
    opened = rf.open_run_dir(out, resume=resume, overwrite=overwrite, protect=[data]) if rank == 0 else \
        rf.rank_scratch(out, resume=resume)
    with opened as out:
        if resume:  # the run's own settings, so that the continued run is the same run
            cfg = RunConfig.from_yaml(out / "config.yaml", complete=True)
            meta_path = out / "meta.json"
            recipe = read_json(meta_path).get("recipe", "?") if meta_path.is_file() else "?"
            source = load_checked(task, data, cfg.data.label_pattern, cfg.modality)
        else:
            user = deep_merge(user_settings(config), named or {})
            source = load_checked(task, data, (user.get("data") or {}).get("label_pattern"),
                                  requested_modality(user, overrides))
            cfg, recipe = task.resolve(source, user, overrides)
            cfg.task = task.name
            pick_devices(cfg, pick_device(cfg))  # more devices than the machine has: say so before any work
            cfg.to_yaml(out / "config.yaml")
        set_threads(cfg)
        torch.manual_seed(cfg.train.seed)  # the model's initial weights come from the run's seed: repeatable
        p = task.prepare(source, cfg, out, resume, progress)
        write_json(out / "skipped.json", [list(s) for s in p.skipped])
        meta = {"status": "training", "created": rf.now(), "task": task.name, "recipe": recipe,
                "config": cfg.to_dict(), **p.meta,
                "model": {"name": cfg.model.name, "kwargs": cfg.model.kwargs,
                          "params": sum(q.numel() for q in p.model.parameters()), **p.meta.get("model", {})},
                "data": {"source": str(Path(data).resolve()), "kind": source.kind, "skipped": len(p.skipped),
                         "fingerprint": rf.fingerprint([r.key for r in source.records]), **p.meta.get("data", {})},
                "versions": rf.versions(), "machine": rf.machine(), "command": rf.describe_command()}
        rf.write_meta(out, meta)
        info = task.fit(p, cfg, out, resume, progress)
        if rank != 0:  # measuring and the run's files are rank 0's
            return TrainResult(out, {}, {"rank": rank, "train": info})
        p.model.eval()
        rf.save_model(out, p.model)
        split, metrics = task.measure(p, cfg, out)
        write_json(out / "metrics.json", metrics)
        meta.update(status="done", finished=rf.now(), train=info, evaluated_on=split, **task.finished(p, metrics))
        rf.write_meta(out, meta)
        from seehear.evaluation import write_report

        write_report(out)
    return TrainResult(out, metrics.get(split, {}) if isinstance(metrics.get(split), dict) else metrics, meta)


def load_checked(task: Task, data, label_pattern: str | None, modality: str) -> Source:
    """task.load, and one line when the data is not of the modality the run names."""
    source = task.load(data, label_pattern, modality)
    if modality not in ("auto", source.modality):
        from seehear.errors import ConfigError

        raise ConfigError(f"--modality {modality}: the {task.name} task reads {data} as {source.modality}")
    return source


def requested_modality(user: dict, overrides: Sequence[str]) -> str:
    """The modality a train call names (--set modality=..., else the config's), or auto."""
    named = [a.split("=", 1)[1].strip() for a in overrides if a.split("=", 1)[0].strip() == "modality"]
    return named[-1] if named else (user.get("modality") or "auto")


def task_of(config, overrides: Sequence[str], out: Path, resume: bool, tasks: Sequence[str]) -> str:
    """The task a train call asks for: --set task=..., else the config's, else the resumed run's, else classify."""
    from seehear.errors import ConfigError

    task: Any = None
    for a in overrides:
        if a.split("=", 1)[0].strip() == "task":
            task = a.split("=", 1)[1].strip()
    if task is None:
        task = user_settings(config).get("task")
    if task is None and resume and (Path(out) / "config.yaml").is_file():
        task = RunConfig.from_yaml(Path(out) / "config.yaml", complete=True).task
    task = task or "classify"
    if task not in tasks:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(tasks)}")
    return task

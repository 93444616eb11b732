"""The Python API: each function dispatches on the task (tasks/*.py); the CLI is a thin front over these.

    import seehear
    result = seehear.train("data/words", out="runs/words", label_pattern=r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_",
                           split_by="speaker")
    print(result.metrics["accuracy"])
    seehear.predict("runs/words", ["clip.wav"])
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Sequence

from seehear.atomic import write_json
from seehear.data.check import check_data as _check_data
from seehear.engine.run_folder import load_run, run_task
from seehear.errors import RunError
from seehear.recipes import deep_merge
from seehear.tasks.base import TrainResult, named_settings, task_of, train_task

TASKS = ("classify", "transcribe", "speakers", "synthesize", "pretrain")

__all__ = ["train", "evaluate", "predict", "check_data", "load_run", "TrainResult", "TASKS"]


def _task_module(name: str):
    return importlib.import_module(f"seehear.tasks.{name}")


def check_data(path, *, label_pattern: str | None = None, modality: str = "auto", out: str | None = None) -> dict:
    report = _check_data(path, label_pattern=label_pattern, modality=modality)
    if out:
        write_json(out, report)
    return report


def train(data, out, *, config=None, task: str | None = None, model: str | None = None, epochs: int | None = None,
          time_budget: float | None = None, label_pattern: str | None = None, split_by: str | None = None,
          overrides: Sequence[str] = (), resume: bool = False, overwrite: bool = False,
          progress: bool = True, from_run: str | Path | None = None,
          unlabelled: str | Path | None = None, synthetic: str | Path | None = None) -> TrainResult:
    """Train on DATA and write a complete run folder to OUT; returns its held-out metrics.

    The task (`task=`, config `task`, or `task=...` in overrides) picks what is learned: classify (a label per
    clip, the default), transcribe (speech to text) or speakers (speaker embeddings). from_run: a seehear run
    folder whose backbone starts this model (transfer); unlabelled: a folder of unlabelled files for
    semi-supervised training (FixMatch); synthetic: a GAN run (task synthesize) whose images top up the rare
    classes of the training split (settings synthetic.ratio)."""
    overrides = ([f"task={task}"] if task else []) + list(overrides)
    extra = {"model": {"init_from": str(from_run)}} if from_run else {}
    if unlabelled:
        extra["data"] = {"unlabelled": str(unlabelled)}
    if synthetic:
        extra["synthetic"] = {"run": str(synthetic)}
    name = task_of(config, overrides, Path(out), resume, TASKS)
    task = _task_module(name).TASK
    if name == "classify" and _task_module("fusion").asked(data, config, overrides, out, resume):
        task = _task_module("fusion").TASK  # audio-image pairs: classification with two inputs
    return train_task(task, data, out, config=config,
                      named=deep_merge(named_settings(model, epochs, time_budget, label_pattern, split_by), extra),
                      overrides=[o for o in overrides if o.split("=", 1)[0].strip() != "task"],
                      resume=resume, overwrite=overwrite, progress=progress)


def evaluate(run, data, *, label_pattern: str | None = None, out: str | Path | None = None,
             progress: bool = True) -> dict:
    """Metrics of a trained run on other data: accuracy etc. for classification (label_pattern applies), WER/CER
    for transcription; written to OUT/metrics.json (default RUN/eval/NAME)."""
    name = run_task(run)
    if name == "classify" and _task_module("fusion").is_fusion_run(run):
        return _task_module("fusion").evaluate(run, data, out=out, progress=progress)
    if name == "classify":
        return _task_module(name).evaluate(run, data, label_pattern=label_pattern, out=out, progress=progress)
    if name == "transcribe":
        return _task_module(name).evaluate(run, data, out=out, progress=progress)
    raise RunError(f"{run} is a {name} run: measure it with `seehear speakers verify`, or train with a test split")


def predict(run, inputs: str | Path | Sequence[str | Path] = (), *, top_k: int = 3, progress: bool = False,
            image: str | Path | None = None, audio: str | Path | None = None) -> list[dict]:
    """Top-k labels with probabilities for files or folders of files; unreadable files get an `error` entry.
    An audio-image run (--modality audio-image) also takes one pair: image=FILE and/or audio=FILE."""
    name = run_task(run)
    if name != "classify":
        raise RunError(f"{run} is a {name} run: use `seehear transcribe` or `seehear speakers` with it")
    if image is not None or audio is not None:
        return _task_module("fusion").predict_pair(run, image, audio, top_k_labels=top_k)
    if _task_module("fusion").is_fusion_run(run):
        files = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        return _task_module("fusion").predict_files(run, files, top_k_labels=top_k)
    return _task_module(name).predict(run, inputs, top_k_labels=top_k, progress=progress)

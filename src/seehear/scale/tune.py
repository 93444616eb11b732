"""`seehear tune DATA --budget 30m --out runs/tune`: hyperparameter search with optuna over seehear's own training.

Every trial is an ordinary run folder (OUT/trials/NNN, trained by the task lifecycle with the trial's settings as
its config), so any trial can be inspected, evaluated or exported like any run. Trials report validation accuracy
at each tenth of their training (scale/pruning.py), and a pruner (median, or Hyperband) stops the bad ones while
they train. The study lives in SQLite (OUT/study.db unless --storage says otherwise): a killed study resumes where it
stopped, the trial it was in the middle of tried again. The best settings are written as OUT/best.yaml, a config
for `seehear train --config`. The objective is validation accuracy; the test split stays untouched by the search
(each trial still reports its test metrics in its own folder).
"""
from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from seehear.errors import ConfigError
from seehear.recipes import deep_merge, user_settings
from seehear.scale import space as sp
from seehear.scale.pruning import ProgressPruning, make_pruner
from seehear.scale.report import write_outputs
from seehear.scale.study import FORMAT, StudyError, open_study, requeue_interrupted, storage_url, study_lock

MIN_TRIAL_SECONDS = 10.0  # decoding, a few steps and a validation pass: below this no trial can say anything
FEW_VALIDATION_GROUPS = 2  # trials scored on fewer held-out speakers than this fit that voice (bench/README.md)
SAMPLERS = ("tpe", "random", "grid")


@dataclass
class TuneResult:
    out: Path
    best_value: float | None
    best_params: dict
    best_yaml: Path | None
    trials: int  # finished (complete or pruned) trials in the study


def tpe_startup(expected_trials: float) -> int:
    """Random trials before TPE models the results. optuna's default (10) is a whole default study (budget / 10
    per trial), which made `--sampler tpe` random search with the same draws as `--sampler random`: a third of
    the trials that fit, at least 3 (TPE needs a few points on each side of its split), at most optuna's 10."""
    return int(max(3, min(10, expected_trials // 3)))


def _sampler(name: str, space: dict, seed: int, expected_trials: float = 30):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup(expected_trials))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(sp.grid(space), seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def _pruner(name):
    import optuna

    if isinstance(name, optuna.pruners.BasePruner):  # from Python: any optuna pruner
        return name
    return make_pruner(name)  # scale/pruning.py: median and Hyperband over tenths of each trial's training


def nested_settings(assignments: Sequence[str]) -> dict:
    """`train.lr=0.1` strings as a nested settings dict (values parsed as YAML, as --set does)."""
    out: dict = {}
    for a in assignments:
        if "=" not in a:
            raise ConfigError(f"--set {a!r}: expected section.key=value, e.g. train.lr=0.01")
        key, raw = a.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def _fixed_by_user(user: dict, space: dict) -> dict:
    """A setting the user gave is theirs: it is not searched."""
    def given(key):
        node = user
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    return {k: v for k, v in space.items() if not given("model.name" if k == "model" else k)}


def _budgets(budget: float, trials: int | None, trial_budget: float | None) -> float:
    if budget is None or budget <= 0:
        raise ConfigError("--budget must be a positive duration, e.g. 30m")
    if budget < MIN_TRIAL_SECONDS:
        raise ConfigError(f"--budget {budget:g}s is too small for one trial (each needs at least "
                          f"{MIN_TRIAL_SECONDS:g}s to decode, train and validate); give e.g. --budget 10m")
    per = trial_budget or max(MIN_TRIAL_SECONDS, budget / (trials or 10))
    if per > budget:
        raise ConfigError(f"--trial-budget {per:g}s is more than the whole --budget {budget:g}s: no trial fits")
    if per < MIN_TRIAL_SECONDS:
        raise ConfigError(f"--trial-budget {per:g}s is too small for one trial (at least {MIN_TRIAL_SECONDS:g}s)")
    return per


def tune(data, out, *, budget: float, trials: int | None = None, trial_budget: float | None = None,
         sampler: str = "tpe", pruner: str = "median", storage: str | None = None, config=None,
         label_pattern: str | None = None, split_by: str | None = None, overrides: Sequence[str] = (),
         space: dict | None = None, seed: int = 0, progress: bool = True) -> TuneResult:
    """Search hyperparameters for DATA within `budget` seconds (and at most `trials` finished trials). Resumes the
    study in `storage` (default OUT/study.db) when it exists. Returns the best trial's value and settings."""
    import optuna
    from optuna.trial import TrialState

    from seehear.engine import run_folder as rf
    from seehear.engine.trainer import extra_callbacks
    from seehear.tasks.base import named_settings, train_task
    from seehear.tasks.classify import TASK

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(out)
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    pruner_obj = _pruner(pruner)
    per_trial = _budgets(budget, trials, trial_budget)
    user = deep_merge(deep_merge(user_settings(config), named_settings(label_pattern=label_pattern,
                                                                       split_by=split_by)), nested_settings(overrides))
    if user.get("task", "classify") != "classify":
        raise ConfigError("seehear tune searches classification runs; task transcribe/speakers is not tuned yet")
    source = TASK.load(data, (user.get("data") or {}).get("label_pattern"))
    base, recipe = TASK.resolve(source, user, [])
    search = _fixed_by_user(user, sp.space_for(source.modality, space))
    if not search:
        raise ConfigError("every setting of the search space is fixed by --config/--set: nothing to tune")
    trial_user = copy.deepcopy(user)
    trial_user.setdefault("train", {}).setdefault("time_budget", per_trial)
    identity = {"format": FORMAT, "task": "classify", "modality": source.modality, "recipe": recipe,
                "data": rf.fingerprint([r.key for r in source.records]), "space": sp.fingerprint(search),
                "fixed": sp.fingerprint(trial_user)}
    url = storage_url(storage, out)
    with study_lock(out):
        study = open_study(url, identity, _sampler(sampler, search, seed, trials or budget / per_trial), pruner_obj)
        requeued = requeue_interrupted(study)
        if requeued and progress:
            print(f"resuming: {requeued} interrupted trial(s) will be tried again", flush=True)
        done_states = (TrialState.COMPLETE, TrialState.PRUNED)

        def objective(trial):
            params = sp.suggest(trial, search)
            settings = sp.settings(params, search, base, source.modality)
            run_dir = out / "trials" / f"{trial.number:03d}"
            trial.set_user_attr("run_dir", str(run_dir))
            trial.set_user_attr("settings", settings)
            last = _LastValue("val_acc")
            pruning = ProgressPruning(trial, monitor="val_acc")
            try:
                with extra_callbacks([last.callback, pruning]):
                    r = train_task(TASK, data, run_dir, config=deep_merge(trial_user, settings), overwrite=True,
                                   progress=False)
            except optuna.TrialPruned:
                _mark(run_dir, "pruned")
                raise
            trial.set_user_attr("test_accuracy", r.metrics.get("accuracy"))
            if last.value is None:
                raise StudyError(f"trial {trial.number} reported no validation accuracy: the data has no "
                                 f"validation split (use more data or data.valid_fraction)")
            return last.value

        validation = None  # what every trial is scored on, known once a trial has made its split

        def meta() -> dict:
            return {"budget_seconds": budget, "trial_budget_seconds": per_trial, "sampler": sampler,
                    "pruner": str(pruner), "storage": url, "recipe": recipe, "modality": source.modality,
                    "trials_wanted": trials, "validation": validation}

        def learn_validation(t) -> None:
            nonlocal validation
            if validation is None and t.user_attrs.get("run_dir"):
                validation = validation_groups(Path(t.user_attrs["run_dir"]), source.records, base.data.split_by)
                if validation and validation["groups"] < FEW_VALIDATION_GROUPS:
                    print(f"note: the validation split holds {validation['groups']} {validation['by']} "
                          f"({validation['files']} files), and every trial is scored on it: the search will favour "
                          f"what suits that one {validation['by']}; --set data.valid_fraction=0.25 holds out more",
                          file=sys.stderr, flush=True)

        if study.trials:  # a resumed study: its trials' split is this one's
            learn_validation(study.trials[-1])
        start = time.time()
        spent_before = sum(_seconds(t) for t in study.get_trials(deepcopy=False, states=done_states))
        walls: list[float] = []
        while True:
            finished = len(study.get_trials(deepcopy=False, states=done_states))
            if trials and finished >= trials:
                break
            if sampler == "grid" and study.sampler.is_exhausted(study):
                break
            left = budget - spent_before - (time.time() - start)
            # start a trial only if one as long as the longest so far still fits (a budget is a limit)
            if left < max([MIN_TRIAL_SECONDS] + walls):
                break
            t0 = time.time()
            study.optimize(objective, n_trials=1, catch=())
            walls.append(time.time() - t0)
            t = study.trials[-1]
            learn_validation(t)
            if progress:
                v = f"{t.value:.4f}" if t.value is not None else "-"
                print(f"trial {t.number:03d} {t.state.name.lower()} val_acc={v} ({walls[-1]:.0f}s) "
                      f"{_short(t.params, search)}", flush=True)
            write_outputs(study, out, search=search, base_settings=trial_user, meta=meta())
        best = write_outputs(study, out, search=search, base_settings=trial_user, meta=meta())
        finished = len(study.get_trials(deepcopy=False, states=done_states))
    if best is None and finished == 0:
        raise StudyError(f"no trial finished within --budget {budget:g}s; give more time")
    return TuneResult(out, best and best["value"], (best or {}).get("params", {}),
                      out / "best.yaml" if best else None, finished)


class _LastValue:
    """The last validation accuracy Lightning logged: a trial's objective (the weights it ends with)."""

    def __init__(self, key: str):
        import lightning.pytorch as pl

        outer = self
        self.value = None

        class C(pl.Callback):
            def on_validation_end(self, trainer, module):
                v = trainer.callback_metrics.get(key)
                if v is not None and not trainer.sanity_checking:
                    outer.value = float(v)

        self.callback = C()


def validation_groups(run_dir: Path, records, by: str | None) -> dict | None:
    """How many files and distinct `by` groups (speakers) a trial's validation split holds; None when the split is
    not by group or the trial made none. Every trial of a study shares that split (same data, seed and settings)."""
    from seehear.data.groups import column_values
    from seehear.data.splits import load_splits

    if not by or not (run_dir / "split.json").is_file():
        return None
    valid = load_splits(records, run_dir / "split.json").get("valid") or []
    values = column_values(records, by, option="--split-by")
    return {"by": by, "files": len(valid), "groups": len({values[i] for i in valid} - {None, ""})}


def _mark(run_dir: Path, status: str) -> None:
    from seehear.engine import run_folder as rf
    from seehear.engine.checkpoint import read_json

    meta_path = run_dir / "meta.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        meta["status"] = status
        rf.write_meta(run_dir, meta)


def _seconds(t) -> float:
    if t.datetime_start and t.datetime_complete:
        return (t.datetime_complete - t.datetime_start).total_seconds()
    return 0.0


def _short(params: dict, search: dict) -> str:
    """One line of a trial's point; relative settings as factors of the recipe's value (lr=x0.5)."""
    parts = []
    for k, v in params.items():
        rel = "x" if search.get(k, ())[3:4] == ("relative",) else ""
        parts.append(f"{k.split('.')[-1]}={rel}{v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}")
    return " ".join(parts)

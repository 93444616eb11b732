"""What a tuning study leaves in OUT, rewritten after every trial (each file atomically, so a killed study still
has a consistent picture): study.json (every trial), best.yaml (the best settings as a config for `seehear train
--config`), history.png (value per trial and the best so far) and importance.png (fANOVA parameter importances).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import yaml

from seehear.atomic import atomic_write, write_json, write_text
from seehear.recipes import deep_merge


def _trial_row(t) -> dict:
    return {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
            "settings": t.user_attrs.get("settings"), "run_dir": t.user_attrs.get("run_dir"),
            "test_accuracy": t.user_attrs.get("test_accuracy"), "retry_of": t.user_attrs.get("retry_of"),
            "val_acc_by_tenth": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "started": str(t.datetime_start) if t.datetime_start else None,
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_start and t.datetime_complete else None}


def write_outputs(study, out: Path, *, search: dict, base_settings: dict, meta: dict) -> dict | None:
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = max(complete, key=lambda t: t.value) if complete else None
    importances = {}
    if len(complete) >= 2:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. every trial drew the same point
            importances = {}
    best_row = None
    if best is not None:
        settings = deep_merge(base_settings, best.user_attrs.get("settings") or {})
        best_row = {**_trial_row(best), "settings": settings}
        header = (f"# seehear tune: best of {len(complete)} complete trials, validation accuracy {best.value:.4f} "
                  f"(trial {best.number:03d}, {best.user_attrs.get('run_dir')}).\n"
                  f"# Use it with: seehear train DATA --config {out / 'best.yaml'} --out runs/NAME\n")
        write_text(out / "best.yaml", header + yaml.safe_dump(settings, sort_keys=False))
    write_json(out / "study.json", {
        **meta, "study": study.study_name, "direction": "maximize", "metric": "val_acc", "optuna": optuna.__version__,
        "space": {k: list(v) for k, v in search.items()}, "best": best_row,
        "counts": {s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail",
                                                                              "running")},
        "importance": importances, "trials": [_trial_row(t) for t in trials]})
    _plot_history(trials, out / "history.png")
    why = "needs at least 2 complete trials" if len(complete) < 2 else \
        "the complete trials scored alike: nothing to attribute yet"
    _plot_importance(importances, out / "importance.png", why)
    return best_row


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    atomic_write(path, lambda p: Path(p).write_bytes(buf.getvalue()))


def _plot_history(trials, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(6, 3.5))
    done = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values]
    if done:
        ax.scatter(*zip(*done), label="complete", color="tab:blue", zorder=3)
        best, xs, ys = -1.0, [], []
        for n, v in done:
            best = max(best, v)
            xs.append(n), ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    if pruned:
        ax.scatter(*zip(*pruned), marker="x", color="grey", label="pruned (last report)", zorder=3)
    ax.set_xlabel("trial"), ax.set_ylabel("validation accuracy"), ax.set_title("optimisation history")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if done or pruned:
        ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _plot_importance(importances: dict, path: Path, why: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.4 * max(3, len(importances)) + 1))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (fANOVA, share of the variance of validation accuracy)")
    else:
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("parameter importance")
    _save(fig, path)

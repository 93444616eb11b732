"""When tune's trials are judged: at tenths of each trial's own training, not at epochs.

Trials differ in batch size, model and so epoch length, and every schedule follows the trial's progress (its time
budget or epochs: engine/base_module.progress). At epoch 2 a batch-64 trial has taken a quarter of the steps a
batch-16 one has, and sits at another point of its learning-rate curve; comparing them there prunes the slow starters
whatever they would become. Reporting at the same share of training compares trials at the same point of their
schedules. The median pruner also waits for 5 complete trials (optuna's default): with 2, a 30-minute FSDD study
pruned 35 of its next 37 trials against the median of those two (2026-12-07), so it never completed another.
"""
from __future__ import annotations

from optuna_integration import PyTorchLightningPruningCallback

from seehear.errors import ConfigError

PRUNERS = ("median", "hyperband", "none")
STEPS = 10  # reports per trial: at each tenth of its training (step k = k/10 done)
MEDIAN_STARTUP = 5  # complete trials before the median pruner prunes (optuna's default)
MEDIAN_WARMUP = 2  # and never before a trial is 2/10 through: its warm-up (25% under onecycle) is still rising


def progress_step(module) -> int:
    """The tenth of training `module` has done (0..STEPS), by its clock or its steps (engine/base_module.progress)."""
    p = float(module.progress())
    return max(0, min(STEPS, int(p * STEPS + 1e-6)))  # 3/15 of training is step 2, not 1.999...


def make_pruner(name: str):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=MEDIAN_WARMUP)
    if name == "hyperband":  # resources are tenths of a trial's training
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=STEPS)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; use one of {', '.join(PRUNERS)}")


class ProgressPruning(PyTorchLightningPruningCallback):
    """optuna-integration's Lightning pruning callback, reporting at the tenth of training done instead of the
    epoch: the first validation in each tenth reports (a tenth with no validation is skipped; later ones in the
    same tenth are not reported: optuna keeps one value per step). Data-parallel runs keep the parent's epochs."""

    def __init__(self, trial, monitor: str):
        super().__init__(trial, monitor=monitor)
        self._reported: set[int] = set()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.is_ddp_backend:
            return super().on_validation_end(trainer, pl_module)
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        step = progress_step(pl_module)
        if score is None or step in self._reported:
            return
        self._reported.add(step)
        self._trial.report(float(score), step=step)
        if self._trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"Trial was pruned at {step}/{STEPS} of its training.")

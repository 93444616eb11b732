"""seehear tune: a real optuna study over real training runs; a killed study resumes from its SQLite file; the best
settings train; bad storage and budgets are one-line errors."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import seehear
from seehear.errors import ConfigError, SeehearError
from seehear.scale import space as sp
from seehear.scale.study import STUDY_NAME, StudyError, study_lock
from seehear.scale.tune import tune

FAST = ["train.epochs=2", "train.threads=1", "data.workers=1"]
# a small space keeps each trial cheap (the model family stays the recipe's fastnet)
SMALL = {"train.lr": ("log", 0.3, 3.0, "relative"), "train.label_smoothing": ("float", 0.0, 0.3)}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    return make_shape_images(tmp_path_factory.mktemp("tune") / "shapes", classes=3, per_class=16, size=16)


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(seehear.__file__).parents[1])}


def _states(out: Path) -> list[str]:
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / 'study.db'}")
    return [t.state.name for t in study.get_trials(deepcopy=False)]


@pytest.mark.slow
def test_killed_study_resumes_and_best_yaml_trains(shapes, tmp_path):
    out = tmp_path / "tune"
    args = [sys.executable, "-m", "seehear", "tune", str(shapes), "--budget", "10m", "--trials", "3", "--out",
            str(out), "--sampler", "random", "--pruner", "none", "--quiet"] + sum((["--set", s] for s in FAST), [])
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / "study.json").is_file():  # written once the first trial is recorded
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no trial finished in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _states(out)
    assert 1 <= before.count("COMPLETE") < 3, before  # killed part way, with at least one trial done

    r = tune(shapes, out, budget=600, trials=3, sampler="random", pruner="none", overrides=FAST, progress=False)
    after = _states(out)
    assert after.count("COMPLETE") == 3 and r.trials == 3, after  # 3 in all, not 3 more
    assert len(after) == 3 + before.count("RUNNING"), after  # an interrupted trial was retried, nothing else
    study = json.loads((out / "study.json").read_text())
    assert study["counts"]["complete"] == 3 and study["best"]["value"] == r.best_value
    assert all((Path(t["run_dir"]) / "metrics.json").is_file() for t in study["trials"] if t["state"] == "complete")
    for png in ("history.png", "importance.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = yaml.safe_load((out / "best.yaml").read_text())
    from seehear.api import train

    trained = train(shapes, tmp_path / "again", config=out / "best.yaml", progress=False)
    cfg = yaml.safe_load((trained.run_dir / "config.yaml").read_text())
    assert cfg["train"]["lr"] == pytest.approx(best["train"]["lr"])  # the tuned values are what trained
    assert cfg["train"]["label_smoothing"] == pytest.approx(best["train"]["label_smoothing"])
    assert 0.0 <= trained.accuracy <= 1.0


def test_search_space_settings_are_absolute_and_the_grid_finite():
    from seehear.config import RunConfig

    base = RunConfig()
    params = {"train.lr": 2.0, "train.batch_size": 32, "model": "small_cnn-narrow"}
    s = sp.settings(params, sp.SPACE["image"], base, "image")
    assert s["train"]["lr"] == pytest.approx(2.0 * base.train.lr) and s["train"]["batch_size"] == 32
    assert s["model"] == {"name": "small_cnn", "kwargs": {"width": 16}}
    for modality in ("image", "audio"):
        g = sp.grid(sp.SPACE[modality])
        assert set(g) == set(sp.SPACE[modality]) and all(1 <= len(v) <= 5 for v in g.values())
        RunConfig().override([f"{k}={v[0]}" for k, v in g.items() if k != "model"])  # every key is a setting


def test_tpe_leaves_random_search_within_a_default_sized_study():
    """A default study fits about 10 trials (budget / 10 each): TPE must model results within them, not spend them
    all on its random start-up, which made it the same draws as --sampler random with the same seed."""
    from seehear.scale.tune import _sampler

    def points(sampler):
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: -abs(sp.suggest(t, SMALL)["train.lr"] - 1.0), n_trials=10)
        return [t.params for t in study.trials]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tpe, rnd = points(_sampler("tpe", SMALL, 0, expected_trials=10)), points(_sampler("random", SMALL, 0))
    differ = [i for i, (a, b) in enumerate(zip(tpe, rnd)) if a != b]
    assert differ and differ[0] <= 4, differ  # guided from the 4th or 5th trial on, not after 10


def test_budget_too_small_for_one_trial(shapes, tmp_path):
    with pytest.raises(ConfigError, match="too small for one trial"):
        tune(shapes, tmp_path / "t", budget=3, progress=False)
    from seehear.cli import main

    assert main(["tune", str(shapes), "--budget", "2s", "--out", str(tmp_path / "t")]) == 2


def test_storage_of_another_study_or_version(shapes, tmp_path):
    other = tmp_path / "other.db"
    optuna.create_study(study_name="someone-else", storage=f"sqlite:///{other}")
    with pytest.raises(StudyError, match="another study"):
        tune(shapes, tmp_path / "a", budget=60, storage=str(other), space=SMALL, overrides=FAST, progress=False)
    old = tmp_path / "old.db"
    optuna.create_study(study_name=STUDY_NAME, storage=f"sqlite:///{old}").set_user_attr("format", 0)
    with pytest.raises(StudyError, match="another seehear tune version"):
        tune(shapes, tmp_path / "b", budget=60, storage=str(old), space=SMALL, overrides=FAST, progress=False)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StudyError):
        tune(shapes, tmp_path / "c", budget=60, storage=str(garbage), space=SMALL, overrides=FAST, progress=False)


def test_locked_study_and_storage(shapes, tmp_path):
    out = tmp_path / "busy"
    with study_lock(out):  # another tune process on the same OUT
        with pytest.raises(StudyError, match="another `seehear tune` is running"):
            tune(shapes, out, budget=60, space=SMALL, overrides=FAST, progress=False)
    db = tmp_path / "locked.db"
    optuna.create_study(study_name=STUDY_NAME, storage=f"sqlite:///{db}")
    con = sqlite3.connect(db)
    con.execute("BEGIN EXCLUSIVE")  # a writer elsewhere holds the database
    try:
        with pytest.raises(SeehearError, match="locked"):
            tune(shapes, tmp_path / "d", budget=60, storage=str(db), space=SMALL, overrides=FAST, progress=False)
    finally:
        con.rollback()
        con.close()


def test_trials_report_at_tenths_of_their_training(shapes, tmp_path):
    # 5 epochs, no time limit reached: a report after each epoch, at 2/10, 4/10 ... of the trial's training
    out = tmp_path / "tenths"
    tune(shapes, out, budget=600, trials=1, space=SMALL, pruner="none",
         overrides=["train.epochs=5", "train.threads=1", "data.workers=1"], progress=False)
    t = json.loads((out / "study.json").read_text())["trials"][0]
    assert t["state"] == "complete" and list(t["val_acc_by_tenth"]) == ["2", "4", "6", "8", "10"]
    assert t["val_acc_by_tenth"]["10"] == pytest.approx(t["value"])


def test_progress_steps_and_the_median_pruners_patience():
    from seehear.scale.pruning import MEDIAN_STARTUP, MEDIAN_WARMUP, STEPS, make_pruner, progress_step

    class Module:  # what the callback reads: the module's own share of training done
        def __init__(self, p):
            self.p = p

        def progress(self):
            return self.p

    assert [progress_step(Module(p)) for p in (0.0, 0.09, 3 / 15, 0.55, 1.0, 1.2)] == [0, 0, 2, 5, STEPS, STEPS]
    # the median pruner judges no trial until MEDIAN_STARTUP trials completed, nor any trial in its first tenths
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median"))
    for _ in range(MEDIAN_STARTUP):
        trial = study.ask()
        trial.report(0.9, step=MEDIAN_WARMUP - 1)
        trial.report(0.9, step=MEDIAN_WARMUP + 1)
        trial.report(0.1, step=MEDIAN_WARMUP + 2)  # below the trials before it: not pruned while too few completed
        assert not trial.should_prune()
        study.tell(trial, 0.9)
    early = study.ask()
    early.report(0.1, step=MEDIAN_WARMUP - 1)
    assert not early.should_prune()  # below the median there, but in its warm-up
    late = study.ask()
    late.report(0.1, step=MEDIAN_WARMUP + 1)
    assert late.should_prune()  # below the completed trials' median at the same share of training
    with pytest.raises(ConfigError, match="unknown pruner"):
        make_pruner("patient")


def test_a_pruned_trial_stops_while_it_trains(shapes, tmp_path):
    # a pruner that prunes every trial at its first report: the trial must stop after one epoch of five
    out = tmp_path / "pruned"
    r = tune(shapes, out, budget=600, trials=1, space=SMALL, pruner=optuna.pruners.ThresholdPruner(lower=2.0),
             overrides=["train.epochs=5", "train.threads=1", "data.workers=1"], progress=False)
    assert r.trials == 1 and r.best_value is None and r.best_yaml is None
    study = json.loads((out / "study.json").read_text())
    t = study["trials"][0]
    assert t["state"] == "pruned" and list(t["val_acc_by_tenth"]) == ["2"]  # epoch 1 of 5
    meta = json.loads((Path(t["run_dir"]) / "meta.json").read_text())
    assert meta["status"] == "pruned"
    epochs = {row.split(",")[0] for row in (Path(t["run_dir"]) / "logs" / "metrics.csv").read_text().splitlines()[1:]}
    assert len(epochs) == 1  # one epoch logged, not five


def test_a_validation_split_of_one_speaker_is_said(shapes, tmp_path, capsys):
    # 4 "speakers" of 12 images: by speaker, the recipe's 10% validation is one whole speaker, and the study says so
    images = sorted(p for p in shapes.rglob("*.png"))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker\n" + "".join(
        f"{p},{p.parent.name},s{i % 4}\n" for i, p in enumerate(images)))
    one = ["data.split_by=speaker", "train.epochs=1", "train.threads=1", "data.workers=1"]
    tune(manifest, tmp_path / "one", budget=600, trials=1, space=SMALL, pruner="none", overrides=one, progress=False)
    said = json.loads((tmp_path / "one" / "study.json").read_text())["validation"]
    assert said == {"by": "speaker", "files": 12, "groups": 1}
    assert "validation split holds 1 speaker (12 files)" in capsys.readouterr().err

    two = one + ["data.valid_fraction=0.5"]  # half the non-test data: two speakers, no note
    tune(manifest, tmp_path / "two", budget=600, trials=1, space=SMALL, pruner="none", overrides=two, progress=False)
    assert json.loads((tmp_path / "two" / "study.json").read_text())["validation"]["groups"] == 2
    assert "validation split holds" not in capsys.readouterr().err

    tune(shapes, tmp_path / "none", budget=600, trials=1, space=SMALL, pruner="none", overrides=one[1:],
         progress=False)  # not split by group: nothing to count
    assert json.loads((tmp_path / "none" / "study.json").read_text())["validation"] is None

"""Episodic training end to end and few-shot evaluation (tasks/fewshot.evaluate_fewshot, `seehear fewshot RUN
evaluate`): an embedding trained by episodes on digits 0-4 tells digits 5-9 apart from 3 examples each, well
above chance, and the run still predicts its own classes with its head."""
import json
import shutil

import pytest

import seehear
from seehear.cli import main
from seehear.data.synth import make_digit_images
from seehear.errors import DataError
from seehear.tasks.fewshot import evaluate_fewshot

pytestmark = pytest.mark.slow
BASE = ["train.threads=1", "data.workers=1", "model.name=small_cnn", "train.optimizer=adamw", "train.lr=0.003",
        "image.size=16", "image.channels=1", "image.tta=none", "train.epochs=6", "train.norm_lr_scale=1",
        "train.decay_norms=false", "train.lookahead=false"]
EPISODIC = ["train.episodic=true", "train.epochs=10"]


@pytest.fixture(scope="module")
def episodic_run(tmp_path_factory):
    """A run trained by 5-way 5-shot episodes on digits 0-4 (50 each); digits 5-9 (50 each) never seen."""
    root = tmp_path_factory.mktemp("episodic")
    digits = make_digit_images(root / "all", per_class=50)
    for d in sorted(digits.iterdir()):
        shutil.copytree(d, root / ("base" if int(d.name) < 5 else "new") / d.name)
    run = seehear.train(root / "base", root / "run", overrides=[*BASE, *EPISODIC], progress=False)
    return run, root


def test_an_episodic_embedding_tells_new_classes_apart_from_three_examples(episodic_run):
    run, root = episodic_run
    ep = run.meta["train"]["episodic"]
    assert (ep["ways"], ep["shots"], ep["queries"]) == (5, 5, 5) and ep["episodes_per_epoch"] >= 1
    assert run.metrics["accuracy"] > 0.5  # the head trained beside the episodes: predict/evaluate still work
    r = evaluate_fewshot(run.run_dir, root / "new", ways=5, shots=[1, 3], episodes=100, seed=0)
    assert r["new_classes"] == list("56789") and r["center"] == "training split"
    one, three = r["shots"]["1"], r["shots"]["3"]
    assert three["accuracy"] - three["ci95"] > 0.4  # chance is 0.2 (measured about 0.6)
    assert three["accuracy"] > one["accuracy"]  # more examples, better prototypes
    assert evaluate_fewshot(run.run_dir, root / "new", ways=5, shots=3, episodes=100, seed=0)["shots"]["3"] == three


def test_fewshot_evaluate_command_and_its_errors(episodic_run, tmp_path, capsys):
    run, root = episodic_run
    out = tmp_path / "fs.json"
    assert main(["fewshot", str(run.run_dir), "evaluate", str(root / "new"), "--shots", "2", "--episodes", "20",
                 "--json", str(out)]) == 0
    assert "2-shot: accuracy" in capsys.readouterr().out and json.loads(out.read_text())["episodes"] == 20
    with pytest.raises(DataError, match="fewer examples than the shots asked for"):
        evaluate_fewshot(run.run_dir, root / "new", shots=40, episodes=5)
    assert main(["fewshot", str(run.run_dir), "evaluate", str(root / "new"), "--ways", "6", "--episodes", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "6-way episodes need 6 classes" in err and len(err.splitlines()) == 1


def test_episodic_training_refuses_classes_too_small_for_an_episode(tmp_path):
    data = make_digit_images(tmp_path / "d", per_class=12)
    for d in sorted(data.iterdir()):
        if int(d.name) > 4:
            shutil.rmtree(d)
    with pytest.raises(DataError, match="fewer examples than the shots asked for"):
        seehear.train(data, tmp_path / "run", overrides=[*BASE, "train.episodic=true", "train.episode_shots=8"],
                      progress=False)
    with pytest.raises(DataError, match="6-way episodes need 6 classes"):
        seehear.train(data, tmp_path / "run2", overrides=[*BASE, "train.episodic=true", "train.episode_ways=6"],
                      progress=False)

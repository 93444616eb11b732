"""What a study leaves in OUT: study.json with every trial, best.yaml from the best trial's settings merged over
the fixed ones, and the importance of the parameter that decides the value."""
import json

import optuna
import yaml

from seehear.scale.report import write_outputs


def test_outputs_of_a_study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(t):
        lr = t.suggest_float("train.lr", 0.0, 1.0)
        t.suggest_categorical("train.batch_size", [16, 32])  # does not matter
        t.set_user_attr("settings", {"train": {"lr": lr}})
        return lr

    study.optimize(objective, n_trials=8)
    best = write_outputs(study, tmp_path, search={"train.lr": ("float", 0.0, 1.0),
                                                  "train.batch_size": ("choice", [16, 32])},
                         base_settings={"train": {"epochs": 3}}, meta={"sampler": "random"})
    assert best["value"] == max(t.value for t in study.trials)
    settings = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert settings == {"train": {"epochs": 3, "lr": best["value"]}}
    d = json.loads((tmp_path / "study.json").read_text())
    assert d["counts"]["complete"] == 8 and len(d["trials"]) == 8 and d["sampler"] == "random"
    assert d["importance"]["train.lr"] > d["importance"]["train.batch_size"]
    for png in ("history.png", "importance.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"

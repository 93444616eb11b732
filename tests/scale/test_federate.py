"""seehear federate: a real Flower server and two client processes on 127.0.0.1; the global model is a run folder
that predicts; a client without data, or a file without a client, is one line."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import seehear
from seehear.errors import DataError

FAST = ["train.threads=1", "data.workers=1", "train.batch_size=8"]


def _manifest(tmp_path: Path, speaker=lambda j: f"s{j % 2}") -> Path:
    from seehear.data.synth import make_tones

    d = make_tones(tmp_path / "tones", classes=3, per_class=10, seconds=0.5)
    rows = ["path,label,speaker"]
    for f in sorted(d.rglob("*.wav")):
        rows.append(f"{f},{f.parent.name},{speaker(int(f.stem.split('_')[1]))}")
    m = tmp_path / "tones.csv"
    m.write_text("\n".join(rows) + "\n")
    return m


@pytest.mark.slow
def test_two_clients_on_loopback_make_a_run_that_predicts(tmp_path):
    from seehear.api import predict
    from seehear.engine.run_folder import load_run
    from seehear.scale.federate import federate

    data = _manifest(tmp_path)
    r = federate(data, tmp_path / "fed", clients_by="speaker", rounds=8, local_epochs=3, strategy="fedprox",
                 overrides=FAST, progress=False)
    fed = json.loads((r.run_dir / "federated.json").read_text())
    assert set(fed["clients"]) == {"s0", "s1"} and sum(fed["clients"].values()) > 0
    assert [h["round"] for h in fed["history"]] == list(range(1, 9))
    run = load_run(r.run_dir)
    assert run.meta["task"] == "classify" and run.meta["train"]["federated"] and run.meta["status"] == "done"
    wav = next((data.parent / "tones").rglob("*.wav"))
    rows = predict(r.run_dir, [wav])
    assert rows[0]["top"][0]["label"] in run.labels
    assert r.metrics["accuracy"] >= 0.6  # the aggregated model learned (3 classes: chance is 0.33)
    # the recipe's one-cycle schedule spread over the 8 rounds: recorded, up in the first rounds, down to 0 by the last
    schedule = run.meta["config"]["train"]["schedule"]
    assert run.meta["train"]["lr_schedule"] == f"{schedule} over rounds" == fed["lr_schedule"]
    first, last = fed["history"][0]["lr_factor"], fed["history"][-1]["lr_factor"]
    assert first[0] < first[1] and last[1] == pytest.approx(0.0, abs=1e-6) and last[0] > 0


def _server(rounds: int, local_epochs: int = 1, on: bool = True, strategy: str = "fedavg") -> dict:
    return {"rounds": rounds, "local_epochs": local_epochs, "strategy": strategy, "proximal_mu": 0.01,
            "lr_schedule": on}


@pytest.mark.parametrize("schedule,warmup", [("onecycle", None), ("cosine", 0.1), ("constant", None)])
def test_each_round_gets_its_share_of_the_recipes_schedule(schedule, warmup):
    """Round r of R: progress (r-1)/R .. r/R, so the rounds in a row trace the curve central training follows over
    its epochs: round 1 starts the warm-up, the rounds meet end to start, the last ends at the schedule's floor."""
    from seehear.config import RunConfig
    from seehear.engine.base_module import schedule_factor
    from seehear.scale.fed_server import fit_config

    t = RunConfig().train
    t.schedule, t.warmup_fraction = schedule, warmup
    rounds = 20
    cs = [fit_config(_server(rounds, local_epochs=2), r) for r in range(1, rounds + 1)]
    assert cs[0]["progress_start"] == 0.0 and cs[-1]["progress_end"] == 1.0
    assert all(a["progress_end"] == b["progress_start"] for a, b in zip(cs, cs[1:]))
    assert {c["schedule_epochs"] for c in cs} == {rounds * 2}
    f = [schedule_factor(t, c["progress_start"], c["schedule_epochs"]) for c in cs]
    peak = max(f)
    assert f[0] < 0.01 and f[1] > f[0]  # warm-up: from (nearly) nothing, rising
    end = schedule_factor(t, cs[-1]["progress_end"], cs[-1]["schedule_epochs"])
    assert end == pytest.approx({"onecycle": 0.0, "cosine": 0.0, "constant": 1.0}[schedule], abs=1e-6)
    assert peak == pytest.approx(1.0, abs=0.06)
    # off: no window; FedProx's mu still travels
    off = fit_config(_server(rounds, on=False, strategy="fedprox"), 3)
    assert "progress_start" not in off and off["proximal_mu"] == 0.01


def test_a_client_trains_over_its_rounds_window(tmp_path):
    """local_train's learning rate at its first and last step is the recipe's schedule at the window's start and
    at its last step's progress; without a window it is train.lr throughout."""
    import torch

    from seehear.config import RunConfig
    from seehear.engine.base_module import schedule_factor
    from seehear.models.recognizer import build_recognizer
    from seehear.scale.fed_client import local_train

    cfg = RunConfig()
    cfg.model.name, cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size = "small_cnn", "sgd", 0.1, 4
    torch.manual_seed(0)
    model = build_recognizer(cfg, ["a", "b"], "image", None)
    x, y = torch.randint(0, 255, (8, 3, 16, 16), dtype=torch.uint8), torch.tensor([0, 1] * 4)
    lo, hi, steps = 0.5, 0.75, 2 * 2  # 2 epochs of 2 batches
    m = local_train(model, cfg, x, y, epochs=2, mu=0.0, seed=1, window=(lo, hi), schedule_epochs=8)
    assert m["lr_first"] == pytest.approx(0.1 * schedule_factor(cfg.train, lo))
    assert m["lr_last"] == pytest.approx(0.1 * schedule_factor(cfg.train, lo + (hi - lo) * (steps - 1) / steps))
    assert m["lr_first"] > m["lr_last"] > 0  # past one-cycle's peak: decaying
    flat = local_train(model, cfg, x, y, epochs=1, mu=0.0, seed=1)
    assert flat["lr_first"] == flat["lr_last"] == 0.1


def test_a_client_with_no_data_is_one_line(tmp_path):
    import torch
    from safetensors.torch import save_file

    from seehear.config import RunConfig

    save_file({"x": torch.zeros(0, 8000, dtype=torch.int16), "y": torch.zeros(0, dtype=torch.long)},
              str(tmp_path / "empty.safetensors"))
    (tmp_path / "spec.json").write_text(json.dumps({"config": RunConfig().to_dict(), "labels": ["a", "b"],
                                                    "modality": "audio"}))
    env = {"PYTHONPATH": str(Path(seehear.__file__).parents[1]), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "seehear.scale.fed_client", "--server", "127.0.0.1:9", "--shard",
                        str(tmp_path / "empty.safetensors"), "--spec", str(tmp_path / "spec.json")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 2
    assert "no training examples" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_files_without_a_client_or_a_single_client(tmp_path):
    from seehear.scale.federate import federate

    data = _manifest(tmp_path, speaker=lambda j: "" if j == 3 else f"s{j % 2}")
    with pytest.raises(DataError, match="no 'speaker' to say which client"):
        federate(data, tmp_path / "a", rounds=1, overrides=FAST, progress=False)
    one = _manifest(tmp_path / "one", speaker=lambda j: "s0")
    with pytest.raises(DataError, match="at least 2 clients"):
        federate(one, tmp_path / "b", rounds=1, overrides=FAST, progress=False)


def test_a_server_that_fails_mid_study_exits_at_once(tmp_path):
    """An error inside Flower's loop (here: the held-out check data does not fit the model) ends the server process
    with exit status 1 and a one-line reason last in its log (what the supervisor reports). With clients
    connected, a plain exit also waited forever on gRPC threads: the server now ends with os._exit."""
    import torch
    from safetensors.torch import save_file

    from seehear.config import RunConfig
    from seehear.models.recognizer import build_recognizer
    from seehear.scale.fed_client import state_arrays
    from seehear.scale.federate import free_port

    cfg = RunConfig()
    cfg.model.name = "small_cnn"
    model = build_recognizer(cfg, ["a", "b"], "image", None)
    save_file({f"{i:05d}": torch.as_tensor(a).contiguous() for i, a in enumerate(state_arrays(model))},
              str(tmp_path / "initial.safetensors"))
    save_file({"x": torch.zeros(2, 5, 32, 32, dtype=torch.uint8), "y": torch.zeros(2, dtype=torch.long)},
              str(tmp_path / "valid.safetensors"))  # 5 channels: the model takes 3
    (tmp_path / "spec.json").write_text(json.dumps({"config": cfg.to_dict(), "labels": ["a", "b"],
                                                    "modality": "image", "norm_stats": None}))
    (tmp_path / "server.json").write_text(json.dumps({
        "rounds": 2, "strategy": "fedavg", "clients": 2, "local_epochs": 1, "proximal_mu": 0.0,
        "server_momentum": 0.9, "dp_noise": None, "dp_clip": 1.0, "round_timeout": 600}))
    env = {"PYTHONPATH": str(Path(seehear.__file__).parents[1]), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "seehear.scale.fed_server", "--address", f"127.0.0.1:{free_port()}",
                        "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 1, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1].startswith("seehear: error: the federated server failed")
    assert not (tmp_path / "global.safetensors").exists()

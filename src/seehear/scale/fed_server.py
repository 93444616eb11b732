"""The Flower server of `seehear federate`, run as its own process:

    python -m seehear.scale.fed_server --address 127.0.0.1:PORT --dir WORK

WORK holds what the supervisor (scale/federate.py) prepared: server.json (rounds, strategy, DP, lr schedule),
spec.json (the run's settings, to build the same Recognizer), initial.safetensors (the starting weights) and
valid.safetensors (the held-out validation examples the global model is measured on after each round; no client's
data). It writes
global.safetensors (the weights after the last round) and history.json (validation accuracy per round).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from seehear.atomic import atomic_write, write_json
from seehear.config import RunConfig
from seehear.engine.base_module import schedule_factor
from seehear.engine.trainer import predict_probs
from seehear.errors import SeehearError
from seehear.models.recognizer import build_recognizer
from seehear.scale.fed_client import load_arrays


def fit_config(s: dict, rnd: int) -> dict:
    """What each client is told for round `rnd` (1-based). With the learning-rate schedule on (server.json
    lr_schedule, the default), the round's share of the whole federated training, (rnd-1)/R .. rnd/R: the client
    evaluates the recipe's schedule over that window, so the rounds together follow the one curve central
    training follows over its epochs (warm-up in the first rounds, decay to the floor by the last)."""
    rounds, local = int(s["rounds"]), int(s["local_epochs"])
    c = {"round": rnd, "local_epochs": local,
         "proximal_mu": float(s["proximal_mu"]) if s["strategy"] == "fedprox" else 0.0}
    if s.get("lr_schedule", True):
        c.update(progress_start=(rnd - 1) / rounds, progress_end=rnd / rounds, schedule_epochs=rounds * local)
    return c


def round_lr(cfg: RunConfig, c: dict) -> dict:
    """The learning-rate multiplier at the start and end of a round's window, for the history (none: constant)."""
    if "progress_start" not in c:
        return {}
    f = [schedule_factor(cfg.train, c[k], c["schedule_epochs"]) for k in ("progress_start", "progress_end")]
    return {"lr_factor": [round(v, 4) for v in f]}


def build_strategy(s: dict, initial, evaluate_fn):
    from flwr.common import ndarrays_to_parameters
    from flwr.server import strategy as st

    n = int(s["clients"])
    mu = fit_config(s, 1)["proximal_mu"]
    common = dict(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_available_clients=n,
                  evaluate_fn=evaluate_fn, initial_parameters=ndarrays_to_parameters(initial),
                  on_fit_config_fn=lambda rnd: fit_config(s, rnd))
    if s["strategy"] == "fedavg":
        strategy = st.FedAvg(**common)
    elif s["strategy"] == "fedprox":
        strategy = st.FedProx(**common, proximal_mu=mu)
    elif s["strategy"] == "fedavgm":
        strategy = st.FedAvgM(**common, server_learning_rate=1.0, server_momentum=float(s["server_momentum"]))
    else:
        raise SeehearError(f"unknown strategy {s['strategy']!r}")
    if s.get("dp_noise"):  # clip each client's update to dp_clip, add N(0, (noise * clip)^2 / n) to the mean
        strategy = st.DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=float(s["dp_noise"]), clipping_norm=float(s["dp_clip"]), num_sampled_clients=n)
    return strategy


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="seehear.scale.fed_server")
    p.add_argument("--address", required=True)
    p.add_argument("--dir", required=True, type=Path)
    a = p.parse_args(argv)
    try:
        import flwr
        from safetensors.torch import load_file, save_file

        logging.getLogger("flwr").setLevel(logging.ERROR)
        work = a.dir
        s = json.loads((work / "server.json").read_text())
        spec = json.loads((work / "spec.json").read_text())
        cfg = RunConfig.from_dict(spec["config"])
        torch.set_num_threads(max(1, cfg.train.threads or 1))
        model = build_recognizer(cfg, spec["labels"], spec["modality"], spec.get("norm_stats"))
        init = load_file(str(work / "initial.safetensors"))
        initial = [init[k].numpy() for k in sorted(init)]
        load_arrays(model, initial)
        valid = load_file(str(work / "valid.safetensors"))
        xva, yva = valid["x"], valid["y"]
        history: list[dict] = []
        latest = {"arrays": initial}
        t0 = time.time()

        def evaluate_fn(rnd, arrays, config):  # the global model after each round, on held-out data
            latest["arrays"] = arrays
            load_arrays(model, arrays)
            acc = float((predict_probs(model, xva, precision="32").argmax(1) == yva).float().mean()) \
                if len(yva) else float("nan")
            if rnd > 0:
                history.append({"round": rnd, "val_acc": acc, "seconds": round(time.time() - t0, 2),
                                **round_lr(cfg, fit_config(s, rnd))})
                write_json(work / "history.json", history)
            return 0.0, {"accuracy": acc}

        flwr.server.start_server(server_address=a.address, strategy=build_strategy(s, initial, evaluate_fn),
                                 config=flwr.server.ServerConfig(num_rounds=int(s["rounds"]),
                                                                 round_timeout=float(s["round_timeout"])))
        tensors = {f"{i:05d}": torch.as_tensor(x).contiguous() for i, x in enumerate(latest["arrays"])}
        atomic_write(work / "global.safetensors", lambda tmp: save_file(tensors, tmp))
    except SeehearError as e:
        return _stop(f"seehear: error: {e}", 2)
    except Exception as e:  # noqa: BLE001 - anything else: the same, with the traceback in the log
        import traceback

        traceback.print_exc()
        return _stop(f"seehear: error: the federated server failed: {type(e).__name__}: {e}", 1)
    return 0


def _stop(message: str, code: int) -> int:
    """Print the error as the log's last line and end the process now: once Flower's gRPC server has started, a
    normal exit waits forever on its threads, and the supervisor would wait for its round timeout."""
    print(message.splitlines()[0][:500], file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

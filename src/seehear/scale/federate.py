"""`seehear federate DATA --clients-by speaker --rounds 30 --out runs/fed`: federated training with Flower.

A real Flower server (in this process) and one client process per group of the training data (a speaker, or any
manifest column), all on 127.0.0.1 over gRPC. Each client holds only its own examples (written to a private shard
file it alone reads) and trains seehear's Recognizer locally each round, its learning rate following the recipe's
schedule over that round's share of all rounds (--constant-lr: train.lr throughout); the server aggregates with
FedAvg, FedProx or FedAvgM, optionally with differential privacy (the clients' updates clipped to --dp-clip and
Gaussian noise of --dp-noise x clip added, Flower's server-side fixed clipping). The global model after the last
round is an ordinary classification run folder (the lifecycle of tasks/base.py writes it: config, meta, split,
weights, held-out metrics, report), so load_run, predict, evaluate and export accept it.

The server sees no training examples, only weights. What the server side of this process still computes from
the union of the data: the split (as for any run) and, for images, the input normalisation statistics; a
deployment across machines would agree those up front.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

from seehear.atomic import atomic_write, write_json
from seehear.errors import ConfigError, DataError, SeehearError
from seehear.recipes import deep_merge
from seehear.tasks.classify import Classify

STRATEGIES = ("fedavg", "fedprox", "fedavgm")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_of(record, clients_by: str) -> str | None:
    if clients_by in ("speaker", "group"):
        return record.group
    v = record.extra.get(clients_by)
    return None if v in (None, "") else str(v)


class Federated(Classify):
    """A classification run whose fit is federated; everything else is the classify task's."""

    def __init__(self, clients_by: str, rounds: int, strategy: str, local_epochs: int, dp_noise: float | None,
                 dp_clip: float, proximal_mu: float, server_momentum: float, timeout: float, lr_schedule: bool = True):
        self.clients_by, self.rounds, self.strategy, self.local_epochs = clients_by, rounds, strategy, local_epochs
        self.dp_noise, self.dp_clip, self.mu, self.momentum, self.timeout = \
            dp_noise, dp_clip, proximal_mu, server_momentum, timeout
        self.lr_schedule = lr_schedule

    def load(self, data, label_pattern, modality="auto"):
        source = super().load(data, label_pattern, modality)
        missing = [r.key for r in source.records if client_of(r, self.clients_by) is None]
        if missing:
            raise DataError(f"{len(missing)} files have no {self.clients_by!r} to say which client holds them (e.g. "
                            f"{missing[0]}); give every file one (a manifest column, or --label-pattern with "
                            f"(?P<speaker>...))")
        return source

    def resolve(self, source, user, overrides):
        if source.modality == "image" and not (user.get("model") or {}).get("name"):
            # fastnet's whitening layer is set from the training images, which the server does not have
            user = deep_merge(user, {"model": {"name": "small_cnn"}})
        return super().resolve(source, user, overrides)

    def fit(self, p, cfg, out, resume, progress):
        xtr, ytr, ridx = p.state["parts"]["train"]
        xva, yva, _ = p.state["parts"]["valid"]
        records = p.state["records"]
        names = sorted({client_of(records[i], self.clients_by) for i in ridx})
        if len(names) < 2:
            raise DataError(f"federated training needs at least 2 clients; the training split has "
                            f"{len(names)} {self.clients_by}(s)")
        rows = {n: [j for j, i in enumerate(ridx) if client_of(records[i], self.clients_by) == n] for n in names}
        start = time.time()
        with tempfile.TemporaryDirectory(prefix="seehear-fed-") as tmp:
            tmp = Path(tmp)
            spec = {"config": cfg.to_dict(), "labels": p.model.labels, "modality": p.model.modality,
                    "norm_stats": p.meta.get("norm_stats")}
            write_json(tmp / "spec.json", spec)
            for i, n in enumerate(names):
                idx = torch.tensor(rows[n], dtype=torch.long)
                _save(tmp / f"client{i}.safetensors", {"x": xtr[idx].contiguous(), "y": ytr[idx].contiguous()})
            history = self._serve(p.model, cfg, names, tmp, (xva, yva), progress)
        p.model.eval()
        # the recipe's schedule spread over the rounds (fed_server.fit_config), or constant at train.lr
        lr = f"{cfg.train.schedule} over rounds" if self.lr_schedule else "constant"
        write_json(out / "federated.json", {"clients_by": self.clients_by, "clients": {
            n: len(rows[n]) for n in names}, "strategy": self.strategy, "rounds": self.rounds,
            "local_epochs": self.local_epochs, "lr_schedule": lr, "dp": {"noise": self.dp_noise, "clip": self.dp_clip}
            if self.dp_noise else None, "history": history})
        return {"federated": True, "clients": len(names), "rounds": self.rounds, "strategy": self.strategy,
                "lr_schedule": lr,
                "wall_seconds": round(time.time() - start, 2), "dp_noise": self.dp_noise,
                "final_val_acc": history[-1]["val_acc"] if history else None, "device": "cpu"}

    # --- the Flower server and its clients, each its own process -----------------------------------------------
    def _serve(self, model, cfg, names, tmp: Path, valid, progress: bool) -> list[dict]:
        from safetensors.torch import load_file

        from seehear.scale.fed_client import load_arrays, state_arrays

        xva, yva = valid
        _save(tmp / "valid.safetensors", {"x": xva.contiguous(), "y": yva.contiguous()})
        _save(tmp / "initial.safetensors", {f"{i:05d}": torch.as_tensor(a) for i, a in enumerate(state_arrays(model))})
        write_json(tmp / "server.json", {"rounds": self.rounds, "strategy": self.strategy, "clients": len(names),
                                         "local_epochs": self.local_epochs, "proximal_mu": self.mu,
                                         "server_momentum": self.momentum, "dp_noise": self.dp_noise,
                                         "dp_clip": self.dp_clip, "round_timeout": self.timeout,
                                         "lr_schedule": self.lr_schedule})
        address = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2])] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
        env.pop("RANK", None), env.pop("LOCAL_RANK", None)
        server_cmd = [sys.executable, "-m", "seehear.scale.fed_server", "--address", address, "--dir", str(tmp)]
        client_cmds = [[sys.executable, "-m", "seehear.scale.fed_client", "--server", address, "--shard",
                        str(tmp / f"client{i}.safetensors"), "--spec", str(tmp / "spec.json"), "--name", n]
                       for i, n in enumerate(names)]
        who = ["server"] + [f"client {n!r}" for n in names]
        logs = [open(tmp / f"{i}.log", "w+") for i in range(len(who))]
        procs = [subprocess.Popen(server_cmd, env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
        time.sleep(0.5)  # the clients retry until the server listens; a head start saves them a retry
        procs += [subprocess.Popen(c, env=env, stdout=logs[i + 1], stderr=subprocess.STDOUT)
                  for i, c in enumerate(client_cmds)]
        limit = time.time() + self.timeout * (self.rounds + 1)
        shown = 0
        try:
            while procs[0].poll() is None:
                time.sleep(0.2)
                if progress and (tmp / "history.json").is_file():  # the server's record, one line per round
                    rounds = json.loads((tmp / "history.json").read_text())
                    for h in rounds[shown:]:
                        print(f"round {h['round']}/{self.rounds} val_acc={h['val_acc']:.4f} ({h['seconds']:.0f}s)",
                              file=sys.stderr, flush=True)
                    shown = len(rounds)
                failed = [i for i, pr in enumerate(procs) if pr.poll() not in (None, 0)]
                if failed:
                    i = failed[0]
                    raise SeehearError(f"federated {who[i]} stopped (exit {procs[i].returncode}): "
                                       f"{_last_line(logs[i])}")
                if time.time() > limit:
                    raise SeehearError(f"the Flower server did not finish {self.rounds} rounds in time")
            if procs[0].returncode != 0:
                raise SeehearError(f"the Flower server stopped (exit {procs[0].returncode}): {_last_line(logs[0])}")
            end = time.time() + 2  # the server is done: the clients have no more work (they may be reconnecting)
            for pr in procs[1:]:
                while pr.poll() is None and time.time() < end:
                    time.sleep(0.1)
        finally:
            for pr in procs:
                if pr.poll() is None:
                    pr.kill()
                    pr.wait()
            for f in logs:
                f.close()
        final = load_file(str(tmp / "global.safetensors"))
        load_arrays(model, [final[k].numpy() for k in sorted(final)])
        history = json.loads((tmp / "history.json").read_text())
        if len(history) < self.rounds:
            raise SeehearError(f"only {len(history)} of {self.rounds} federated rounds completed")
        return history


def _save(path: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file(tensors, tmp))


def _last_line(f) -> str:
    f.flush()
    f.seek(0)
    lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def federate(data, out, *, clients_by: str = "speaker", rounds: int = 30, strategy: str = "fedavg",
             local_epochs: int = 1, dp_noise: float | None = None, dp_clip: float = 1.0, proximal_mu: float = 0.01,
             server_momentum: float = 0.9, round_timeout: float = 600.0, lr_schedule: bool = True, config=None,
             label_pattern=None, split_by=None, overrides: Sequence[str] = (), overwrite: bool = False,
             progress: bool = True):
    """Federated training of a classifier; returns the run's TrainResult (held-out metrics of the global model).
    lr_schedule: each round's local training follows the recipe's learning-rate schedule over that round's share
    of all rounds (False: constant train.lr in every round)."""
    from seehear.tasks.base import named_settings, train_task

    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown federated strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if rounds < 1 or local_epochs < 1:
        raise ConfigError("--rounds and --local-epochs must be at least 1")
    if dp_noise is not None and (dp_noise < 0 or dp_clip <= 0):
        raise ConfigError("--dp-noise must be >= 0 and --dp-clip > 0")
    task = Federated(clients_by, rounds, strategy, local_epochs, dp_noise, dp_clip, proximal_mu, server_momentum,
                     round_timeout, lr_schedule)
    return train_task(task, data, out, config=config, named=named_settings(label_pattern=label_pattern,
                                                                           split_by=split_by),
                      overrides=list(overrides), overwrite=overwrite, progress=progress)


def describe(result) -> str:
    f = Path(result.run_dir) / "federated.json"
    d = json.loads(f.read_text()) if f.is_file() else {}
    return (f"{len(d.get('clients', {}))} clients by {d.get('clients_by')}, {d.get('rounds')} rounds "
            f"({d.get('strategy')})")

"""One Flower client of `seehear federate`, run as its own process:

    python -m seehear.scale.fed_client --server 127.0.0.1:PORT --shard CLIENT.safetensors --spec spec.json

It sees only its own shard (the decoded examples of one client: one speaker, say), builds the same Recognizer as
the server from the run's settings, and each round trains it locally from the global weights (FedProx: with a
proximal term pulling towards them; the learning rate following the recipe's schedule over the round's share of
the whole training, as the server says), then sends the weights back. Bad input (an empty shard) is one line on
stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from seehear.config import RunConfig
from seehear.engine.base_module import schedule_factor
from seehear.engine.classify import ClassifyModule
from seehear.engine.loaders import Batches
from seehear.errors import DataError, SeehearError
from seehear.models.recognizer import build_recognizer


def load_shard(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    t = load_file(str(path))
    x, y = t.get("x"), t.get("y")
    if x is None or y is None or len(y) == 0:
        raise DataError(f"client shard {path} holds no training examples: a client needs data of its own")
    return x, y


def state_arrays(model: torch.nn.Module) -> list:
    return [v.detach().cpu().numpy() for v in model.state_dict().values()]


def load_arrays(model: torch.nn.Module, arrays) -> None:
    state = model.state_dict()
    if len(arrays) != len(state):
        raise SeehearError(f"the server sent {len(arrays)} tensors, the model has {len(state)}: other settings?")
    new = {}
    for (k, v), a in zip(state.items(), arrays):
        t = torch.as_tensor(a).float().reshape(v.shape)
        # Averaged (and, with DP, noised) BatchNorm statistics must stay statistics: a variance > 0, a count >= 0.
        if k.endswith("running_var"):
            t = t.clamp(min=1e-5)
        elif k.endswith("num_batches_tracked"):
            t = t.abs().round()
        new[k] = t.to(v.dtype)
    model.load_state_dict(new)


def local_train(model, cfg: RunConfig, x, y, *, epochs: int, mu: float, seed: int,
                window: tuple[float, float] | None = None, schedule_epochs: float | None = None) -> dict:
    """`epochs` passes over this client's data with the run's optimiser settings; FedProx adds
    mu/2 * ||w - w_global||^2. The learning rate: with `window` (this round's share of the federated training,
    from the server), the recipe's schedule at the progress each step reaches across that window (step k of n:
    start + (end - start) * k / n, as central training's step k of n); without, constant at train.lr."""
    module = ClassifyModule(model, cfg, steps_per_epoch=1)
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    anchor = [p.detach().clone() for p in params] if mu > 0 else None
    bs = max(1, min(t.batch_size, len(y)))
    loader = Batches(x, y, bs, shuffle=True, seed=seed)
    sched = None
    if window is not None:
        lo, hi = window
        n = max(1, epochs * len(loader))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: schedule_factor(t, lo + (hi - lo) * min(k, n) / n, schedule_epochs))
    model.train()
    seen, loss_sum, correct = 0, 0.0, 0
    lrs = [opt.param_groups[0]["lr"]]  # the first and last step's learning rate, reported to the server
    for e in range(epochs):
        loader.epoch = e
        for xb, yb in loader:
            logits = model(module.prepare(xb, train=True))
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=t.label_smoothing)
            if anchor is not None:
                loss = loss + mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
            opt.step()
            lrs[1:] = [opt.param_groups[0]["lr"]]
            if sched is not None:
                sched.step()
            seen += len(yb)
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
    model.eval()
    return {"train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen), "lr_first": lrs[0],
            "lr_last": lrs[-1]}


def make_client(model, cfg: RunConfig, x, y, name: str):
    import flwr

    class Client(flwr.client.NumPyClient):
        def get_parameters(self, config):
            return state_arrays(model)

        def fit(self, parameters, config):
            load_arrays(model, parameters)
            rnd = int(config.get("round", 0))
            window = (float(config["progress_start"]), float(config["progress_end"])) \
                if "progress_start" in config else None
            m = local_train(model, cfg, x, y, epochs=int(config.get("local_epochs", 1)),
                            mu=float(config.get("proximal_mu", 0.0)), seed=cfg.train.seed * 1_000 + rnd,
                            window=window, schedule_epochs=config.get("schedule_epochs"))
            return state_arrays(model), len(y), {**m, "client": name}

        def evaluate(self, parameters, config):
            load_arrays(model, parameters)
            with torch.no_grad():
                logits = model(ClassifyModule(model, cfg, 1).prepare(x, train=False))
            loss = float(F.cross_entropy(logits.float(), y))
            return loss, len(y), {"accuracy": float((logits.argmax(1) == y).float().mean())}

    return Client().to_client()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="seehear.scale.fed_client")
    p.add_argument("--server", required=True, help="HOST:PORT of the Flower server (127.0.0.1 here)")
    p.add_argument("--shard", required=True, type=Path, help="this client's examples (safetensors x, y)")
    p.add_argument("--spec", required=True, type=Path, help="spec.json: settings, labels, modality, norm stats")
    p.add_argument("--name", default="client")
    a = p.parse_args(argv)
    try:
        import logging

        import flwr

        logging.getLogger("flwr").setLevel(logging.ERROR)
        spec = json.loads(a.spec.read_text())
        cfg = RunConfig.from_dict(spec["config"])
        torch.set_num_threads(max(1, cfg.train.threads or 1))
        x, y = load_shard(a.shard)
        torch.manual_seed(cfg.train.seed)
        model = build_recognizer(cfg, spec["labels"], spec["modality"], spec.get("norm_stats"))
        flwr.client.start_client(server_address=a.server, client=make_client(model, cfg, x, y, a.name),
                                 insecure=True, max_wait_time=120)
    except SeehearError as e:
        print(f"seehear: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`seehear tune` (and the other scale commands): argument parsing only; the work is in seehear.scale."""
from __future__ import annotations

import argparse
import re


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1.5h' -> seconds (as `seehear train --time-budget`; cli.py is above this layer)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 90s, 5m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def add_commands(sub) -> None:
    p = sub.add_parser("tune", help="search hyperparameters for DATA with optuna; every trial is a run folder")
    p.add_argument("data")
    p.add_argument("--out", required=True, help="study folder: trials/NNN, study.db, best.yaml, study.json, PNGs")
    p.add_argument("--budget", required=True, type=parse_duration, help="wall-clock time for the whole study, "
                                                                         "e.g. 30m (a resumed study counts on)")
    p.add_argument("--trials", type=int, help="stop after this many finished trials (default: as many as fit)")
    p.add_argument("--trial-budget", type=parse_duration, help="training time per trial (default: budget / "
                                                               "trials, or budget / 10)")
    p.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe")
    p.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median",
                   help="stop bad trials while they train, on validation accuracy per epoch")
    p.add_argument("--storage", help="optuna storage URL (default sqlite:///OUT/study.db); resumed if it exists")
    p.add_argument("--config", help="YAML with fixed settings; settings it names are not searched")
    p.add_argument("--label-pattern")
    p.add_argument("--split-by")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed setting for every trial (not searched), e.g. --set train.epochs=10")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_cmd_tune)

    au = sub.add_parser("auto", help="pick the model family and recipe for DATA by successive halving within a "
                                     "time budget; the winner trains as OUT/best")
    au.add_argument("data")
    au.add_argument("--out", required=True, help="search folder: candidates/, best/ (a run), auto.json, best.yaml, "
                                                 "report.html; the same command again continues a killed search")
    au.add_argument("--budget", required=True, type=parse_duration, help="wall-clock time for everything, e.g. 20m")
    au.add_argument("--candidates", type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
                    help="comma-separated candidate names (default: as many as the budget allows, up to "
                         "--max-candidates; see src/seehear/scale/candidates.py)")
    au.add_argument("--max-candidates", type=int, default=9)
    au.add_argument("--eta", type=int, default=3, help="the top 1/eta of each rung go on with eta times the time")
    au.add_argument("--config", help="YAML with fixed settings for every candidate (not model.name)")
    au.add_argument("--label-pattern")
    au.add_argument("--split-by")
    au.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    au.add_argument("--quiet", action="store_true")
    au.set_defaults(handler=_cmd_auto)

    f = sub.add_parser("federate", help="federated training with Flower: a server and one client process per "
                                        "speaker (or manifest column) on 127.0.0.1; the global model is a run")
    f.add_argument("data")
    f.add_argument("--out", required=True, help="run folder for the global model")
    f.add_argument("--clients-by", default="speaker", help="what makes a client: speaker (the files' group) or a "
                                                           "manifest column")
    f.add_argument("--rounds", type=int, default=30)
    f.add_argument("--local-epochs", type=int, default=1, help="passes over its own data per client and round")
    f.add_argument("--strategy", choices=["fedavg", "fedprox", "fedavgm"], default="fedavg")
    f.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx's proximal term weight")
    f.add_argument("--server-momentum", type=float, default=0.9, help="FedAvgM's server momentum")
    f.add_argument("--dp-noise", type=float, help="differential privacy: Gaussian noise multiplier on the clipped "
                                                  "client updates (server-side fixed clipping)")
    f.add_argument("--dp-clip", type=float, default=1.0, help="clipping norm of each client's update")
    f.add_argument("--constant-lr", action="store_true", help="train.lr in every round, instead of the recipe's "
                                                              "schedule spread over the rounds")
    f.add_argument("--config")
    f.add_argument("--label-pattern")
    f.add_argument("--split-by")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    f.add_argument("--overwrite", action="store_true")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(handler=_cmd_federate)


def _cmd_tune(a) -> int:
    from seehear.scale.tune import tune

    r = tune(a.data, a.out, budget=a.budget, trials=a.trials, trial_budget=a.trial_budget, sampler=a.sampler,
             pruner=a.pruner, storage=a.storage, config=a.config, label_pattern=a.label_pattern,
             split_by=a.split_by, overrides=a.overrides, seed=a.seed, progress=not a.quiet)
    if r.best_value is not None:
        print(f"best validation accuracy {r.best_value:.4f} after {r.trials} trials: {r.best_params}")
        print(f"settings: {r.best_yaml}   (seehear train DATA --config {r.best_yaml} --out runs/NAME)")
    else:
        print(f"{r.trials} trials finished, none complete (all pruned?); see {r.out / 'study.json'}")
    return 0


def _cmd_auto(a) -> int:
    from seehear.scale.auto import auto

    r = auto(a.data, a.out, budget=a.budget, candidates=a.candidates, max_candidates=a.max_candidates, eta=a.eta,
             config=a.config, label_pattern=a.label_pattern, split_by=a.split_by, overrides=a.overrides,
             progress=not a.quiet)
    print(f"best: {r.best_run} ({r.chosen}; validation accuracy {r.val_accuracy:.4f}) after {r.elapsed_seconds:.0f}s")
    print(f"settings: {r.out / 'best.yaml'}   report: {r.out / 'report.html'}")
    return 0


def _cmd_federate(a) -> int:
    from seehear.scale.federate import describe, federate

    r = federate(a.data, a.out, clients_by=a.clients_by, rounds=a.rounds, strategy=a.strategy,
                 local_epochs=a.local_epochs, dp_noise=a.dp_noise, dp_clip=a.dp_clip, proximal_mu=a.proximal_mu,
                 server_momentum=a.server_momentum, lr_schedule=not a.constant_lr, config=a.config,
                 label_pattern=a.label_pattern, split_by=a.split_by, overrides=a.overrides, overwrite=a.overwrite,
                 progress=not a.quiet)
    acc = r.metrics.get("accuracy")
    print(f"global model: {describe(r)}; held-out accuracy {acc:.4f}" if acc is not None else
          f"global model: {describe(r)}")
    print(f"run: {r.run_dir}   report: {r.run_dir / 'report.html'}")
    return 0

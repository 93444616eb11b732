"""`seehear federate` (Flower server + one client process per client, on 127.0.0.1) against central training of the
same model with the same recipe and a comparable number of passes over the data (central epochs = rounds x
local epochs: each round every client makes `local_epochs` passes over its own data).

  fsdd   each FSDD training speaker is a client (4 clients, non-IID: one voice each); george + jackson held out as
         the test set (as bench/fsdd_connected.py); the default audio recipe; FedAvg.
         Goal fedavg_vs_central = accuracy(FedAvg) / accuracy(central) >= 0.95.
  cifar  a CIFAR-10 subset (--per-class training images per class, a fifth as many test images; the JPEG copy as
         bench/cifar10.py extracts it) split over 20 clients by Dirichlet(0.1) label proportions (seeded; written
         as a manifest with a `client` column; every client gets at least 10 images); small_cnn (federate's image
         model: fastnet's whitening needs the union of the images) with one SGD setting for every side (below);
         fedavg, fedprox (mu 0.01), fedavgm (server momentum 0.9). Goal best_strategy_vs_central >= 0.85.

    .venv/bin/python bench/federated_fsdd.py                # both parts, ~1 h → federated.json
    .venv/bin/python bench/federated_fsdd.py --part fsdd    # ~7 min → federated-fsdd.json
    .venv/bin/python bench/federated_fsdd.py --part cifar   # ~40 min → federated-cifar10.json
    .venv/bin/python bench/federated_fsdd.py --limit small  # both parts on a few files, 2 rounds (~2 min) → /tmp
Full run time (2 cores): fsdd 45 rounds (~5 min) + central (~1.5 min); cifar 3 strategies x 40 rounds over 5,000
images (~10 min each) + central (~3 min): about 45 min in all (estimated from the smoke run's per-round times; the
process start of 20 clients, ~3 s CPU each, is paid once per strategy).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from common import WORK, Bench, run_accuracy

FSDD_HELD_OUT = ("george", "jackson")
FSDD_ROUNDS = 45  # the audio recipe's epoch cap: central trains as many epochs
CIFAR_ROUNDS = 40
CIFAR_PER_CLASS = 500  # training images per class (test: a fifth of it)
CIFAR_CLIENTS, DIRICHLET_ALPHA, MIN_CLIENT = 20, 0.1, 10
# One image setting for federated and central alike: image-small's SGD (lr 0.375, norm lr x64, lookahead) is tuned
# for fastnet's 1/9 logit scale, which small_cnn lacks; the clients' local SGD also has no per-group learning rates.
CIFAR_SETTINGS = ["model.name=small_cnn", "train.optimizer=sgd", "train.lr=0.05", "train.momentum=0.9",
                  "train.weight_decay=5e-4", "train.batch_size=32", "train.lookahead=false", "train.norm_lr_scale=1",
                  "train.decay_norms=false", "train.label_smoothing=0.1", "train.grad_clip=5"]
STRATEGIES = ("fedavg", "fedprox", "fedavgm")
SMALL = {"takes": 3, "rounds": 2, "per_class": 20, "clients": 4, "min_client": 5}
SPLIT = ["data.split_column=split"]


def fsdd_manifest(small: bool) -> Path:
    from fsdd import recordings
    from peer import write_manifest

    rows = recordings()
    if small:
        rows = [r for r in rows if r["take"] < SMALL["takes"]]
    return write_manifest(rows, lambda r: r["speaker"] in FSDD_HELD_OUT, WORK / "federated" / "fsdd.csv")


def dirichlet_clients(labels: list[str], clients: int, alpha: float, min_size: int, seed: int = 0) -> list[int]:
    """A client per example: each class's examples dealt to the clients in Dirichlet(alpha) proportions, drawn
    again (next seed) until every client holds at least min_size (the usual non-IID split, Hsu et al. 2019)."""
    y = np.array(labels)
    for attempt in range(1000):
        rng = np.random.default_rng([seed, attempt])
        owner = np.empty(len(y), dtype=int)
        for c in sorted(set(labels)):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * clients)) * len(idx)).astype(int)[:-1]
            for k, part in enumerate(np.split(idx, cuts)):
                owner[part] = k
        if np.bincount(owner, minlength=clients).min() >= min_size:
            return owner.tolist()
    sys.exit(f"federated: no Dirichlet({alpha}) split gives every one of {clients} clients {min_size} examples")


def cifar_manifest(per_class: int, clients: int, min_client: int) -> tuple[Path, dict]:
    """path,label,client,split: per_class training images per class dealt to clients, per_class/5 test images
    (their client column says heldout: federate wants every file to name one; only training files make clients)."""
    from cifar10 import EXTRACTED, extract

    extract()
    train, test = [], []
    for split, n, rows in (("train", per_class, train), ("test", max(1, per_class // 5), test)):
        for cls in sorted(d for d in (EXTRACTED / split).iterdir() if d.is_dir()):
            rows += [(str(f), cls.name) for f in sorted(cls.glob("*.jpg"))[:n]]
    owner = dirichlet_clients([lab for _, lab in train], clients, DIRICHLET_ALPHA, min_client)
    path = WORK / "federated" / f"cifar10-{per_class}-{clients}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "client", "split"])
        w.writerows([p, lab, f"c{k:02d}", "train"] for (p, lab), k in zip(train, owner))
        w.writerows([p, lab, "heldout", "test"] for p, lab in test)
    sizes = np.bincount(owner, minlength=clients)
    per_client_classes = [len({train[i][1] for i in range(len(train)) if owner[i] == k}) for k in range(clients)]
    return path, {"train_images": len(train), "test_images": len(test), "clients": clients,
                  "dirichlet_alpha": DIRICHLET_ALPHA, "client_sizes": sizes.tolist(),
                  "classes_per_client": per_client_classes}


def federated(data: Path, out: Path, clients_by: str, strategy: str, rounds: int, overrides: list[str]) -> dict:
    import json

    from seehear.scale.federate import federate

    t0 = time.time()
    r = federate(data, out, clients_by=clients_by, rounds=rounds, strategy=strategy, local_epochs=1,
                 overrides=[*overrides, "train.threads=1"], overwrite=True, progress=True)
    fed = json.loads((r.run_dir / "federated.json").read_text())
    return {"test_accuracy": run_accuracy(r.run_dir), "rounds": rounds, "clients": len(fed["clients"]),
            "lr_schedule": fed["lr_schedule"],
            "val_acc_per_round": [round(h["val_acc"], 4) for h in fed["history"]],
            "wall_seconds": round(time.time() - t0, 1)}


def central(data: Path, out: Path, epochs: int, overrides: list[str]) -> dict:
    import seehear

    t0 = time.time()
    r = seehear.train(data, out, overwrite=True, progress=False,
                      overrides=[*overrides, "train.threads=2", f"train.epochs={epochs}"])
    return {"test_accuracy": run_accuracy(r.run_dir), "epochs": r.meta["train"]["epochs_run"],
            "model": r.meta["model"]["name"], "wall_seconds": round(time.time() - t0, 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["fsdd", "cifar", "all"], default="all")
    ap.add_argument("--rounds", type=int, help=f"federated rounds (default fsdd {FSDD_ROUNDS}, cifar {CIFAR_ROUNDS}); "
                                               f"central trains as many epochs")
    ap.add_argument("--per-class", type=int, default=CIFAR_PER_CLASS, help="CIFAR-10 training images per class")
    ap.add_argument("--limit", choices=["small"], help="small: a few files, 2 rounds, written to /tmp (plumbing)")
    args = ap.parse_args(argv)
    small = args.limit == "small"
    work = WORK / "federated" / ("small" if small else "full")
    # each part alone writes its own file (federated-fsdd.json, federated-cifar10.json); both: federated.json
    name = {"fsdd": "federated-fsdd", "cifar": "federated-cifar10", "all": "federated"}[args.part]
    with Bench(f"{name}-small" if small else name, results=WORK / "results" if small else None) as b:
        if args.part in ("fsdd", "all"):
            rounds = SMALL["rounds"] if small else args.rounds or FSDD_ROUNDS
            man = fsdd_manifest(small)
            print(f"== fsdd: FedAvg over the training speakers, {rounds} rounds", file=sys.stderr, flush=True)
            fed = federated(man, work / "fsdd-fedavg", "speaker", "fedavg", rounds, SPLIT)
            print(f"== fsdd: central, {rounds} epochs", file=sys.stderr, flush=True)
            cen = central(man, work / "fsdd-central", rounds, SPLIT)
            ratio = round(fed["test_accuracy"] / cen["test_accuracy"], 4)
            b.figures["fsdd"] = {"held_out": list(FSDD_HELD_OUT), "recipe": "audio-words (default)",
                                 "fedavg": fed, "central": cen, "fedavg_vs_central": ratio}
            print("fsdd", {"fedavg": fed["test_accuracy"], "central": cen["test_accuracy"]}, file=sys.stderr)
            b.goal("fedavg_vs_central", 0.95, ratio)
        if args.part in ("cifar", "all"):
            rounds = SMALL["rounds"] if small else args.rounds or CIFAR_ROUNDS
            per_class = SMALL["per_class"] if small else args.per_class
            clients = SMALL["clients"] if small else CIFAR_CLIENTS
            man, split = cifar_manifest(per_class, clients, SMALL["min_client"] if small else MIN_CLIENT)
            fig = {"split": split, "settings": CIFAR_SETTINGS, "manifest": str(man)}
            for s in STRATEGIES:
                print(f"== cifar: {s}, {clients} clients, {rounds} rounds", file=sys.stderr, flush=True)
                fig[s] = federated(man, work / f"cifar-{s}", "client", s, rounds, SPLIT + CIFAR_SETTINGS)
            print(f"== cifar: central, {rounds} epochs", file=sys.stderr, flush=True)
            fig["central"] = central(man, work / "cifar-central", rounds, SPLIT + CIFAR_SETTINGS)
            best = max(STRATEGIES, key=lambda s: fig[s]["test_accuracy"])
            fig["best_strategy"] = best
            fig["best_strategy_vs_central"] = ratio = round(fig[best]["test_accuracy"] /
                                                            fig["central"]["test_accuracy"], 4)
            b.figures["cifar"] = fig
            print("cifar", {k: fig[k]["test_accuracy"] for k in (*STRATEGIES, "central")}, file=sys.stderr)
            b.goal("best_strategy_vs_central", 0.85, ratio)
        b.notes.append("each round's local training follows the recipe's learning-rate schedule over that round's "
                       "share of all rounds (federate's default), as central training follows it over its epochs")
        if small:
            b.notes.append("--limit small: a plumbing check (a few files, 2 rounds), not a result")


if __name__ == "__main__":
    main()

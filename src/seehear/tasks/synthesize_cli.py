"""`seehear synthesize`: argument parsing only; the work is in seehear.tasks.synthesize.

    seehear synthesize DATA --out runs/gan [--time-budget 30m]     train a class-conditional GAN on DATA
    seehear synthesize runs/gan --per-class 500 --out synthetic/   write PNGs in a folder per class
    seehear synthesize runs/gan --evaluate runs/real [--per-class 200]   how close the images are to real ones
                                                                   (RUN/quality.json, report.html)

torch is imported inside the handler, so that `seehear --help` stays fast."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

_UNITS = {"s": 1, "m": 60, "h": 3600, "": 1}


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90s, 30m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def add_commands(sub) -> None:
    sy = sub.add_parser("synthesize", help="train a GAN on labelled small images, or make images with a GAN run")
    sy.add_argument("source", metavar="DATA|RUN", help="image data to train on, or a trained GAN run folder")
    sy.add_argument("--out", help="the run folder to train into, or the folder for the images")
    sy.add_argument("--per-class", type=int, help="with a GAN run: images to write (or, with --evaluate, to "
                                                  "measure; default 200) for each class")
    sy.add_argument("--evaluate", metavar="CLASSIFIER_RUN", help="with a GAN run: Fréchet distance, precision and "
                    "recall on the features of this classifier (trained on the real images), beside real held-out "
                    "images; writes RUN/quality.json")
    sy.add_argument("--time-budget", type=_duration, help="stop training after this long, e.g. 30m")
    sy.add_argument("--epochs", type=int)
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sy.add_argument("--config", help="YAML settings")
    sy.add_argument("--resume", action="store_true")
    sy.add_argument("--overwrite", action="store_true")
    sy.add_argument("--json", action="store_true", help="print JSON")
    sy.set_defaults(handler=_synthesize)


def _synthesize(a) -> int:
    from seehear.errors import ConfigError

    run = Path(a.source)
    is_run = (run / "meta.json").is_file()
    if a.evaluate:
        if not is_run:
            raise ConfigError(f"{a.source} is not a GAN run folder (no meta.json); --evaluate needs one")
        from seehear.tasks.synthesize import evaluate_gan, format_quality

        q = evaluate_gan(run, a.evaluate, per_class=a.per_class or 200, seed=a.seed, progress=not a.json)
        print(json.dumps(q, indent=2) if a.json else
              f"{format_quality(q)}\nwritten {run / 'quality.json'} and {run / 'report.html'}")
        return 0
    if not a.out:
        raise ConfigError("--out is needed: the run folder to train into, or the folder for the images")
    if is_run and not a.resume:
        from seehear.tasks.synthesize import generate

        r = generate(run, a.out, per_class=a.per_class or 500, seed=a.seed)
        print(json.dumps(r, indent=2) if a.json else
              f"wrote {sum(r['per_class'].values())} images ({r['size']}x{r['size']}) in "
              f"{len(r['per_class'])} class folders under {r['out']}")
        return 0
    if a.per_class is not None:
        raise ConfigError(f"{a.source} is not a GAN run folder (no meta.json); --per-class needs one")
    from seehear.tasks.base import named_settings, train_task
    from seehear.tasks.synthesize import TASK

    r = train_task(TASK, a.source, a.out, config=a.config,
                   named=named_settings(epochs=a.epochs, time_budget=a.time_budget),
                   overrides=[*a.overrides, f"train.seed={a.seed}"], resume=a.resume, overwrite=a.overwrite)
    tr = r.meta.get("train", {})
    print(json.dumps({"run": str(r.run_dir), "train": tr}, indent=2) if a.json else
          f"trained a GAN in {tr.get('train_seconds', 0):.0f}s ({tr.get('steps', 0)} steps) → {r.run_dir} "
          f"(samples.png; make images with `seehear synthesize {r.run_dir} --per-class 500 --out DIR`)")
    return 0

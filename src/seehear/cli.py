"""`seehear` command line: argument parsing only; the work is done by seehear.api.

User errors (SeehearError) print one line and exit 2; anything else is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys

from seehear.errors import SeehearError


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1.5h' -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 90s, 5m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# Modules that add their own subcommands (add_commands(subparsers)); each keeps its parsing beside its code.
COMMAND_MODULES = ["seehear.tasks.transcribe_cli", "seehear.tasks.speakers_cli", "seehear.deploy.cli",
                   "seehear.serve.cli", "seehear.trust.cli",
                   "seehear.scale.cli", "seehear.tasks.synthesize_cli",
                   "seehear.tasks.little_cli"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seehear", description="Train, measure and use image and audio recognizers.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="look at a data set").add_subparsers(dest="data_command", required=True)
    chk = data.add_parser("check", help="what is in DATA, and what is wrong with it")
    chk.add_argument("data")
    chk.add_argument("--label-pattern", help=r"regex on file names, e.g. '(?P<label>\d)_(?P<speaker>[a-z]+)_'")
    chk.add_argument("--json", metavar="FILE", help="also write the report as JSON")

    tr = sub.add_parser("train", help="train a recognizer on DATA into a run folder")
    tr.add_argument("data")
    tr.add_argument("--out", required=True, help="run folder to create, e.g. runs/digits")
    tr.add_argument("--config", help="YAML with settings (docs/example-config.yaml lists them all); "
                                     "flags below win over it")
    tr.add_argument("--task", choices=["classify", "transcribe", "speakers", "synthesize", "pretrain"],
                    help="what to learn: a label per clip (classify, the default), speech to text (transcribe, "
                         "from transcripts), or speaker embeddings (speakers, from speaker names)")
    tr.add_argument("--model", help="a registered model (see `seehear models`)")
    tr.add_argument("--modality", choices=["image", "audio", "frames", "audio-image"], help="what the examples are "
                    "(default: detected); frames: image sequences, a folder of frame images or an animated GIF/WebP "
                    "each; audio-image: DATA is a manifest of (image, audio, label) pairs, fused (fusion.mode)")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--time-budget", type=parse_duration, help="stop training after this long, e.g. 5m")
    tr.add_argument("--label-pattern", help=r"regex with (?P<label>...) on file names")
    tr.add_argument("--split-by", help="hold out whole groups, e.g. speaker (no speaker in both train and test)")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="any setting, e.g. --set train.lr=0.01 --set audio.n_mels=64")
    tr.add_argument("--devices", type=int, help="data parallel: train in this many processes (CPU) or GPUs")
    tr.add_argument("--strategy", choices=["auto", "ddp"], help="how --devices share the work (ddp: "
                                                                "DistributedDataParallel; gloo on CPU)")
    tr.add_argument("--from", dest="from_run", metavar="RUN", help="start from the backbone of this seehear run "
                    "(transfer learning; see train.freeze_epochs and train.backbone_lr_scale)")
    tr.add_argument("--unlabelled", metavar="DIR", help="also learn from these unlabelled files (FixMatch-style "
                    "pseudo-labels; see train.fixmatch_threshold)")
    tr.add_argument("--synthetic", metavar="GAN_RUN", help="top up the rare classes of the training split with this "
                    "GAN run's images (`seehear synthesize`; see synthetic.ratio)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    tr.add_argument("--quiet", action="store_true", help="no progress output")

    ev = sub.add_parser("evaluate", help="metrics of a trained run on other labelled data")
    ev.add_argument("run")
    ev.add_argument("data")
    ev.add_argument("--label-pattern")
    ev.add_argument("--out", help="folder for metrics.json and confusion.png (default RUN/eval/NAME)")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")

    pr = sub.add_parser("predict", help="top-k labels for files or folders")
    pr.add_argument("run")
    pr.add_argument("inputs", nargs="*", metavar="FILE_OR_FOLDER")
    pr.add_argument("--image", metavar="FILE", help="audio-image runs: the image of a pair (alone also works)")
    pr.add_argument("--audio", metavar="FILE", help="audio-image runs: the recording of a pair (alone also works)")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--format", choices=["table", "csv", "json"], default="table")

    ex = sub.add_parser("export", help="the trained run as ONNX (front end included), checked against PyTorch")
    ex.add_argument("run")
    ex.add_argument("--out", help="file to write (default RUN/model.onnx, or RUN/model.int8.onnx with --int8)")
    ex.add_argument("--int8", metavar="DATA", help="also write an int8 copy, calibrated on inputs from DATA (e.g. "
                                                   "the training folder); reports its agreement with fp32")
    ex.add_argument("--min-agreement", type=float, default=0.99, help="with --int8: refuse (write nothing) unless "
                    "int8 top-1 agrees with fp32 on this fraction of held-out inputs (default 0.99)")

    md = sub.add_parser("models", help="list the registered models")
    md.add_argument("--modality", choices=["image", "audio", "frames"])
    md.add_argument("--task", choices=["classify", "transcribe"])

    import importlib

    for name in COMMAND_MODULES:  # each capability's own commands live beside it (its cli.py / *_cli.py)
        importlib.import_module(name).add_commands(sub)

    dm = sub.add_parser("demo", help="train and evaluate two recognizers on generated data (about 3 minutes)")
    dm.add_argument("--out", default="demo-runs")
    return p


def _cmd_check(a) -> int:
    from seehear.api import check_data
    from seehear.data.check import format_report

    report = check_data(a.data, label_pattern=a.label_pattern, out=a.json)
    print(format_report(report))
    return 0


def _cmd_train(a) -> int:
    from seehear.api import train

    parallel = [f"train.{k}={v}" for k, v in (("devices", a.devices), ("strategy", a.strategy)) if v is not None]
    parallel += [f"modality={a.modality}"] if a.modality else []
    r = train(a.data, a.out, config=a.config, task=a.task, model=a.model, epochs=a.epochs,
              time_budget=a.time_budget, label_pattern=a.label_pattern, split_by=a.split_by,
              overrides=parallel + a.overrides, resume=a.resume, overwrite=a.overwrite, progress=not a.quiet,
              from_run=a.from_run, unlabelled=a.unlabelled, synthetic=a.synthetic)
    if r.meta.get("rank"):  # another data-parallel rank: rank 0 reports
        return 0
    from seehear.evaluation import format_metrics

    print(format_metrics(r.metrics) if r.metrics else "no held-out data to measure on")
    print(f"run: {r.run_dir}   report: {r.run_dir / 'report.html'}")
    return 0


def _cmd_evaluate(a) -> int:
    from seehear.api import evaluate
    from seehear.evaluation import format_metrics

    m = evaluate(a.run, a.data, label_pattern=a.label_pattern, out=a.out, progress=not a.json)
    print(json.dumps(m, indent=2) if a.json else format_metrics(m) + f"\nwritten to {m['out']}")
    return 0


def _cmd_predict(a) -> int:
    from seehear.api import predict

    if not a.inputs and a.image is None and a.audio is None:
        raise SeehearError("give files or folders to predict on (or --image/--audio for an audio-image run)")
    rows = predict(a.run, a.inputs, top_k=a.top_k, image=a.image, audio=a.audio)
    if a.format == "json":
        print(json.dumps(rows, indent=2))
    elif a.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["file", "label", "probability", "top", "error"])
        for r in rows:
            top = ";".join(f"{t['label']}:{t['probability']}" for t in r.get("top", []))
            w.writerow([r["file"], r.get("label", ""), r.get("probability", ""), top, r.get("error", "")])
        print(buf.getvalue(), end="")
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table("file", "label", "probability", "top", box=None)
        for r in rows:
            top = "  ".join(f"{x['label']} {x['probability']:.3f}" for x in r.get("top", [])[1:])
            t.add_row(r["file"], r.get("label", "[red]unreadable"), f"{r['probability']:.3f}" if "label" in r
                      else r["error"], top)
        Console(width=160).print(t)
    return 1 if rows and all("error" in r for r in rows) else 0


def _cmd_export(a) -> int:
    from seehear.deploy.onnx import export_onnx

    if a.int8:
        from seehear.deploy.quantize import export_int8

        path, info = export_int8(a.run, a.int8, a.out, min_agreement=a.min_agreement)
        print(f"written {path}: int8, calibrated on {info['calibration_examples']} inputs from {a.int8}; its top-1 "
              f"prediction agrees with fp32 on {100 * info['top1_agreement_with_fp32']:.1f}% of "
              f"{info['check_examples']} held-out inputs ({len(info['fp32_nodes'])} layers kept fp32)")
        return 0
    path = export_onnx(a.run, a.out)
    print(f"written {path} (labels and input spec in {path.with_suffix('.json')})")
    return 0


def _cmd_models(a) -> int:
    from seehear.models.registry import list_models

    for s in list_models(a.modality, a.task):
        print(f"{s.name:34s} {s.modality:6s} {s.task:10s} {s.description}")
    return 0


def _cmd_demo(a) -> int:
    from seehear.demo import run_demo

    run_demo(a.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    a, extra = parser.parse_known_args(argv)
    # argparse (before Python 3.12) cannot give an optional list of positionals (nargs="*") the values that follow
    # options, e.g. `transcribe RUN --stream -`: those come back here and are the list's.
    if extra and isinstance(getattr(a, "inputs", None), list) and not any(x.startswith("--") for x in extra):
        a.inputs += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = getattr(a, "handler", None) or {
        "data": _cmd_check, "train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
        "models": _cmd_models, "export": _cmd_export, "demo": _cmd_demo}[a.command]
    try:
        return handler(a)
    except SeehearError as e:
        print(f"seehear: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = f" (continue with: seehear train {a.data} --out {a.out} --resume)" if a.command == "train" else ""
        print(f"seehear: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

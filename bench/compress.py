"""compress-cifar10 / compress-fsdd: what `seehear compress` buys on CIFAR-10 (default image recipe, fastnet) and on
FSDD spoken digits (default audio recipe, TC-ResNet8, the usual split: takes 0-4 of every speaker = test).

    .venv/bin/python bench/compress.py --subset 500 --budget 120   # ~10 min → results/compress-cifar10-subset.json
    .venv/bin/python bench/compress.py                             # full set, 8-minute training (well over 15 min)
    .venv/bin/python bench/compress.py --data fsdd                 # 100 s training (~6 min) → compress-fsdd.json
    SEEHEAR_BENCH_RESULTS=/tmp .venv/bin/python bench/compress.py --data fsdd --subset 5 --budget 10 --epochs 1
                                                                   # smoke (~1 min) → /tmp/compress-fsdd-subset.json

Trains one run, then measures on its held-out test split, batch 1, one thread, ONNX Runtime:
- int8 of the run itself as `seehear compress RUN --int8 TRAIN_DATA` ships it (calibrated and checked on held-out
  training inputs; quantization-aware training when post-training quantization loses more than half a point) vs
  the run's fp32 model: int8_speedup_batch1 (goal >= 2.0) at int8_accuracy_drop (goal <= 0.005);
- 50% channel pruning + fine-tuning distilled from the unpruned model: pruned_speedup_batch1 (goal >= 1.6) at
  pruned_accuracy_drop (goal <= 0.01);
- distill_gain: accuracy of the same pruned model fine-tuned with distillation minus fine-tuned on labels alone
  (same epochs; goal >= 0.01).
Records the CPU's int8 instruction set (AVX-512 VNNI / BF16, or AVX2 without VNNI, where reduce_range is used).
Timings are medians over interleaved rounds, on a machine shared with other processes: noisy.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import WORK, Bench

RUNS = WORK / "compress-runs"
BUDGET = {"cifar10": 480, "fsdd": 100}  # training seconds (fsdd: bench/fsdd.py's TIME_BUDGET)


def cifar10_data(args, name: str):
    """(what to train on, training inputs to calibrate int8 on, the train call)."""
    import seehear

    import cifar10  # its extraction and subset folders

    cifar10.extract()
    data = cifar10.subset(args.subset) if args.subset else cifar10.EXTRACTED
    return data, data / "train", lambda run_dir: seehear.train(data, run_dir, time_budget=args.budget,
                                                                overwrite=True, progress=False)


def fsdd_data(args, name: str):
    """FSDD's usual split as a manifest (bench/fsdd.py's), the training takes alone as the calibration manifest."""
    import seehear

    import fsdd
    from peer import write_manifest

    rows = fsdd.recordings()
    if args.subset:  # the first N training takes of every speaker and digit, all test takes
        rows = [r for r in rows if r["take"] in fsdd.TEST_TAKES or r["take"] < max(fsdd.TEST_TAKES) + 1 + args.subset]
    man = write_manifest(rows, lambda r: r["take"] in fsdd.TEST_TAKES, RUNS / name / "usual.csv")
    calib = write_manifest([r for r in rows if r["take"] not in fsdd.TEST_TAKES], lambda r: False,
                           RUNS / name / "train-only.csv")
    overrides = ["data.split_column=split", f"train.time_budget={args.budget}", "train.threads=2"]
    return man, calib, lambda run_dir: seehear.train(str(man), run_dir, overrides=overrides, overwrite=True,
                                                      progress=False)


def frontend_onnx(run, out: Path) -> Path:
    """The run's front end alone (pixel scaling, or the log-mel/MFCC of raw samples) as ONNX: int8 and pruning
    leave it as it is, so its share of the batch-1 time bounds what they can speed up."""
    import warnings

    import torch

    from seehear.deploy.onnx import OPSET, example_input

    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(run.model.frontend.eval(), (example_input(run.meta["input"]),), str(out),
                          input_names=["input"], output_names=["features"], opset_version=OPSET,
                          dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=sorted(BUDGET), default="cifar10")
    ap.add_argument("--subset", type=int, default=0, help="cifar10: N training images per class (N/5 test); "
                                                          "fsdd: N training takes per speaker and digit")
    ap.add_argument("--budget", type=float, help="training time budget, seconds (default: cifar10 480, fsdd 100)")
    ap.add_argument("--prune", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs after pruning")
    args = ap.parse_args(argv)
    args.budget = BUDGET[args.data] if args.budget is None else args.budget

    import seehear
    from seehear.deploy.compress import compress
    from seehear.deploy.cpu import int8_isa
    from seehear.deploy.distill import load_split
    from seehear.deploy.int8_check import export_int8
    from seehear.deploy.measure import latencies_ms, onnx_accuracy
    from seehear.deploy.onnx import example_input, export_onnx

    name = f"compress-{args.data}" + ("-subset" if args.subset else "")
    with Bench(name) as b:
        t0 = time.time()
        data, calib, train = (cifar10_data if args.data == "cifar10" else fsdd_data)(args, name)
        run_dir = RUNS / name / "run"
        r = train(run_dir)
        t_train = time.time() - t0
        run = seehear.load_run(run_dir)
        test = load_split(run, "test")
        xt, yt = test.x.numpy(), test.y.numpy()
        if xt.dtype.kind == "i":  # cached int16 audio; the exported graphs take float samples
            from seehear.data.decode import pcm_to_float

            xt = pcm_to_float(test.x).numpy()
        fp32_path = export_onnx(run_dir)

        t1 = time.time()  # int8 as compress ships it: PTQ, QAT when PTQ loses more than half a point
        q8 = compress(run_dir, RUNS / name / "int8", int8=str(calib), overwrite=True)
        int8_path, rec = RUNS / name / "int8" / "model.int8.onnx", q8["int8"]
        if not int8_path.is_file():  # refused: measured anyway (first plan, no bar), and said so
            b.notes.append(f"seehear compress --int8 refused this run's int8 model: {rec.get('refused')}; the int8 "
                           f"figures below are of the PTQ model export --int8 --min-agreement 0 writes")
            int8_path, _ = export_int8(run_dir, calib, RUNS / name / "refused.int8.onnx", min_agreement=0.0)
        t_int8 = time.time() - t1

        t2 = time.time()
        kd = compress(run_dir, RUNS / name / "pruned-distilled", prune=args.prune, epochs=args.epochs,
                      overwrite=True)
        t_kd = time.time() - t2
        hard = compress(run_dir, RUNS / name / "pruned-labels", prune=args.prune, epochs=args.epochs,
                        distill=False, overwrite=True)
        pruned_path = RUNS / name / "pruned-distilled" / "model.onnx"

        x1 = example_input(run.meta["input"], batch=1, seed=3).numpy()
        front = frontend_onnx(run, RUNS / name / "frontend.onnx")
        lat = latencies_ms({"fp32": fp32_path, "int8": int8_path, "pruned": pruned_path, "frontend_only": front},
                           x1, rounds=7, runs=100)
        acc = {"fp32": onnx_accuracy(fp32_path, xt, yt), "int8": onnx_accuracy(int8_path, xt, yt),
               "pruned_distilled": kd["table"][1]["accuracy"], "pruned_labels_only": hard["table"][1]["accuracy"]}
        isa = int8_isa()
        ptq_row = next((row for row in q8["table"] if row["model"].startswith("compressed int8 (PTQ")), None)
        b.figures.update({
            "cpu_int8_isa": isa, "data": str(data), "subset": args.subset or None,
            "train_budget_seconds": args.budget, "test_examples": int(len(yt)),
            "latency_ms_batch1": lat, "accuracy": acc,
            "int8": {"path": rec.get("path"), "qat_mode": rec.get("qat_mode"), "ptq": rec.get("ptq"),
                     "qat": rec.get("qat"), "max_ptq_drop": rec.get("max_ptq_drop"),
                     "test_accuracy_ptq_before_qat": ptq_row["accuracy"] if ptq_row else None,
                     "calibration_data": str(calib)},
            "pruned": {"ratio": args.prune, "finetune_epochs": args.epochs, "table": kd["table"],
                       "kl_to_teacher": [kd["finetune"].get("kl_to_teacher_before"),
                                         kd["finetune"].get("kl_to_teacher_after")]},
            "seconds": {"train_run": round(t_train, 1), "int8_compress": round(t_int8, 1),
                        "compress_distilled": round(t_kd, 1)},
            "run_accuracy_pytorch": r.accuracy,
        })
        b.goal("int8_speedup_batch1", 2.0, round(lat["fp32"] / lat["int8"], 3))
        b.goal("int8_accuracy_drop", 0.005, round(acc["fp32"] - acc["int8"], 4), higher_is_better=False)
        b.goal("pruned_speedup_batch1", 1.6, round(lat["fp32"] / lat["pruned"], 3))
        b.goal("pruned_accuracy_drop", 0.01, round(acc["fp32"] - acc["pruned_distilled"], 4), higher_is_better=False)
        b.goal("distill_gain", 0.01, round(acc["pruned_distilled"] - acc["pruned_labels_only"], 4))
        reduce_range = (rec.get("qat") or rec.get("ptq") or {}).get("reduce_range")
        b.notes.append(f"CPU int8 instruction set: {isa['isa']} (reduce_range={reduce_range}); the CPU is "
                       f"shared with other agents' processes, so latencies are noisy (medians of interleaved rounds)")
        b.notes.append(f"int8 path: {rec.get('path')} (compress --int8, QAT {rec.get('qat_mode')}: when PTQ loses "
                       f"more than {rec.get('max_ptq_drop')} on held-out training inputs); int8_accuracy_drop is "
                       f"against the run's own fp32 model on the test split")
        if acc["pruned_labels_only"] > acc["fp32"] + 0.01:
            b.notes.append("the pruned models score above the original: the run itself is under-trained (its time "
                           "budget on this machine), and fine-tuning adds training, so the accuracy-drop and "
                           "distill-gain figures say little here; the latencies do not depend on it")
        share = lat["frontend_only"] / lat["fp32"]
        b.figures["frontend_share_of_fp32_latency"] = round(share, 3)
        if share > 0.3:
            b.notes.append(f"the fp32 front end alone takes {100 * share:.0f}% of the fp32 model's batch-1 time; int8 "
                           f"and pruning leave it as it is, so they can speed the whole model up by at most "
                           f"{1 / share:.2f}x")
        if args.subset:
            unit = "images per class" if args.data == "cifar10" else "takes per speaker and digit"
            b.notes.append(f"subset run ({args.subset} training {unit}, {len(yt)} test examples): accuracy "
                           f"differences of a point are within its noise")
        if args.data == "fsdd":
            b.notes.append("FSDD (CC BY-SA 4.0, Jakobovski et al.), usual split: takes 0-4 of every speaker = test, "
                           "so the test speakers are also training speakers")


if __name__ == "__main__":
    main()

"""`seehear compress RUN --out RUN-small ...`: argument parsing only; the work is in seehear.deploy.compress."""
from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    p = sub.add_parser("compress", help="a smaller, faster copy of a run as a new run folder: channel pruning with "
                                        "fine-tuning, distillation from a teacher run, a checked int8 ONNX copy")
    p.add_argument("run")
    p.add_argument("--out", required=True, help="new run folder to write, e.g. runs/digits-small")
    p.add_argument("--prune", type=float, metavar="FRACTION", help="remove this fraction of channels (e.g. 0.5), "
                                                                   "then fine-tune on the run's training split")
    p.add_argument("--int8", metavar="DATA", help="also write an int8 ONNX copy calibrated on DATA, checked against "
                                                  "fp32 on held-out inputs")
    p.add_argument("--qat", action=argparse.BooleanOptionalAction, default=None,
                   help="with --int8: quantization-aware fine-tuning before quantizing (--no-qat: never; default: "
                        "only when post-training quantization loses more than half a point on held-out inputs)")
    p.add_argument("--qat-epochs", type=int, metavar="N", help="length of that fine-tune (default 1)")
    p.add_argument("--distill-from", metavar="TEACHER_RUN", help="fine-tune by distilling from this run's model "
                                                                 "(same labels)")
    p.add_argument("--no-distill", action="store_true", help="with --prune and no --distill-from: fine-tune on the "
                                                             "labels alone (default: distill from the unpruned model)")
    p.add_argument("--data", help="labelled data to measure accuracy on (default: the run's held-out split)")
    p.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs (default 4)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if an earlier `seehear compress` wrote it")
    p.set_defaults(handler=_cmd_compress)


def int8_summary(q: dict) -> str:
    """One line: which int8 path was taken (PTQ, or QAT after PTQ) and the accuracies on the held-out check inputs."""
    def score(d: dict) -> str:
        if "refused" in d or "skipped" in d:
            return "refused" if "refused" in d else f"skipped ({d['skipped']})"
        return f"{100 * d['accuracy_int8']:.1f}%" if "accuracy_int8" in d else \
            f"{100 * d['top1_agreement_with_fp32']:.1f}% agreement with fp32"

    ptq, qat = q["ptq"], q.get("qat")
    if qat is None:
        why = "QAT not needed" if q["qat_mode"] == "auto" else "QAT off"
        return f"PTQ {score(ptq)} on {ptq['check_examples']} held-out check inputs (drop {ptq['drop']}; {why})"
    return f"PTQ {score(ptq)} -> QAT {score(qat)} on held-out check inputs: kept {q['path'].upper()}"


def _cmd_compress(a) -> int:
    from seehear.deploy.compress import compress

    c = compress(a.run, a.out, prune=a.prune, int8=a.int8, distill_from=a.distill_from, data=a.data,
                 distill=not a.no_distill, epochs=a.epochs, overwrite=a.overwrite, qat=a.qat,
                 qat_epochs=a.qat_epochs)
    w = max(16, *(len(r["model"]) for r in c["table"]))
    print(f"{'model':{w}s} {'params':>9s} {'ONNX KB':>8s} {'MFLOPs':>8s} {'ms (b=1)':>9s} {'accuracy':>9s}")
    for r in c["table"]:
        print(f"{r['model']:{w}s} {r['parameters']:9d} {r['onnx_kb']:8.1f} {r['mflops']:8.2f} "
              f"{r['latency_ms_batch1']:9.3f} {100 * r['accuracy']:8.1f}%")
    q = c.get("int8") or {}
    if "refused" in q:
        print(f"int8: {q['refused']}")
    elif q:
        print(f"int8: {int8_summary(q)}")
    print(f"run: {a.out}   report: {a.out}/report.html (accuracy on {c['held_out_examples']} held-out examples; "
          f"timings on a possibly shared CPU)")
    return 0

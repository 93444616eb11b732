"""`seehear explain` and `seehear report`: argument parsing only; the work is in seehear.trust."""
from __future__ import annotations

import sys


def add_commands(sub) -> None:
    ex = sub.add_parser("explain", help="where a trained model looks: attribution overlays (PNG; for audio over "
                                        "the spectrogram, with a WAV of the evidence)")
    ex.add_argument("run")
    ex.add_argument("inputs", nargs="+", metavar="FILE")
    ex.add_argument("--method", choices=["gradcam", "ig", "occlusion"], default="gradcam",
                    help="gradcam (last conv layer; integrated gradients for LSTM/attention models), ig "
                         "(integrated gradients) or occlusion")
    ex.add_argument("--out", required=True, help="folder for the overlays")
    ex.set_defaults(handler=_cmd_explain)

    rp = sub.add_parser("report", help="trust report of a run on labelled DATA: calibration, explanations, "
                                       "embeddings, label issues (and robustness, attacks, fairness on request)")
    rp.add_argument("run")
    rp.add_argument("data")
    rp.add_argument("--robustness", action="store_true", help="accuracy under generated corruptions")
    rp.add_argument("--adversarial", action="store_true", help="accuracy under FGSM and PGD attacks")
    rp.add_argument("--fairness-by", metavar="COLUMN", help="per-group results by this manifest column "
                                                            "(default: the data's group/speaker, if any)")
    rp.add_argument("--method", choices=["gradcam", "ig", "occlusion"], default="gradcam")
    rp.add_argument("--label-pattern")
    rp.add_argument("--out", help="folder for trust.json and its PNGs (default: the run folder, whose report.html "
                                  "then gets a Trust section)")
    rp.set_defaults(handler=_cmd_report)


def _cmd_explain(a) -> int:
    from seehear.trust.explain import explain

    rows = explain(a.run, a.inputs, method=a.method, out=a.out)
    for r in rows:
        if "error" in r:
            print(f"seehear: {r['file']}: {r['error']}", file=sys.stderr)
            continue
        extra = f"  {r['wav']}" if "wav" in r else ""
        note = f"  ({r['note']})" if "note" in r else ""
        print(f"{r['file']}\t{r['label']} {r['probability']:.3f}\t{r['png']}{extra}{note}")
    return 1 if rows and all("error" in r for r in rows) else 0


def _cmd_report(a) -> int:
    from seehear.trust.report import trust_report

    t = trust_report(a.run, a.data, robustness=a.robustness, adversarial=a.adversarial,
                     fairness_by=a.fairness_by, method=a.method, label_pattern=a.label_pattern, out=a.out,
                     progress=sys.stderr.isatty())
    cal = t["calibration"]
    line = [f"accuracy {t['accuracy']:.2%} on {t['measured_on']} (n={t['n']})"]
    if "test" in cal:
        line.append(f"ECE {cal['test']['ece_before']:.3f} -> {cal['test']['ece_after']:.3f} "
                    f"(T={cal.get('temperature', 1.0):.2f})")
    if "robustness" in t:
        line.append(f"mean corruption accuracy {t['robustness']['mean_corruption_accuracy']:.2%}")
    if "adversarial" in t:
        pgd = [r for r in t["adversarial"]["results"] if r["attack"] == "pgd"][-1]
        line.append(f"PGD@{pgd[t['adversarial']['unit']]:g} {pgd['accuracy']:.2%}")
    acc = (t.get("fairness") or {}).get("accuracy") or {}
    if acc.get("worst_group") is not None:
        line.append(f"worst {t['fairness']['column']} {acc['worst_group']!r} {acc['worst']:.2%}")
    print("   ".join(line))
    where = a.out or t["run"]
    print(f"written {where}/trust.json" + ("" if a.out else f" and the Trust section of {where}/report.html"))
    return 0

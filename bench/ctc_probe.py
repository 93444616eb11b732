"""What gets CTC off its all-blank plateau sooner on a CPU: the transcription options side by side at equal CPU
time (issue 15), on the connected FSDD digit strings of bench/fsdd_connected.py (held-out voices).

Each config is the default `asr` recipe plus a few settings (CONFIGS below), trained for the same --budget seconds
of training time on the same threads, one after another. Recorded per config: the greedy WER on a fixed set of
held-out strings at evenly spaced points of the training clock (the learning curve; the evaluation is kept off
the clock), when the blank plateau ended (engine/plateau.py: the training batches' greedy output reaches half
their transcripts' units, as step and training second), steps per second, and the run's own beam-search WER on
the whole test split at the end (decoder settings untuned, the same for all).

    .venv/bin/python bench/ctc_probe.py                          # all configs, 300 s each → bench/results/probes/
    .venv/bin/python bench/ctc_probe.py --only sub8_spm --only baseline --budget 120
    .venv/bin/python bench/ctc_probe.py --only baseline --only interctc --seeds 3 --budget 120   # 3 seeds each
    .venv/bin/python bench/ctc_probe.py --limit small --only baseline --budget 8 --out /tmp/ctc-smoke   # plumbing

Writes ctc-NAME.json per config (train.seed 0) and ctc-NAME-seedS.json for the other seeds of --seeds, and
ctc-summary.json: every run found in the output folder, best first, and per config the mean, lowest and highest
over its seeds (one seed's spread on these strings is ~17 WER points at 120 s: rank configs by several).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import RESULTS, WORK, command, commit
from fsdd_connected import TEST_SPEAKERS, TEST_STRINGS, TRAIN_STRINGS, data_summary, make_data

SPM = ["transcribe.units=sentencepiece", "transcribe.vocab_size=32"]  # digit words become ~one piece each
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("the asr recipe: Conformer 6 x 144, x4 subsampling, characters, onecycle (25% warm-up), lr 1e-3",
                 []),
    "sub2": ("x2 subsampling (20 ms frames)", ["model.subsample=2"]),
    "sub8": ("x8 subsampling (80 ms frames), characters: short strings may have fewer frames than units",
             ["model.subsample=8"]),
    "spm": ("sentencepiece units (32), x4", SPM),
    "sub8_spm": ("x8 subsampling with sentencepiece units (32)", ["model.subsample=8", *SPM]),
    "small": ("smaller Conformer: 4 blocks x dim 96 (more steps in the same time)",
              ["model.kwargs={dim: 96, layers: 4, heads: 4, ffn_dim: 384}"]),
    "tiny": ("conformer_ctc_tiny: 2 blocks x dim 64", ["model.name=conformer_ctc_tiny"]),
    "interctc": ("intermediate CTC from the middle block, weight 0.3", ["train.inter_ctc_weight=0.3"]),
    "sortagrad": ("first epoch shortest batch first", ["train.sortagrad=true"]),
    "warmup5": ("warm-up over 5% of training instead of 25%", ["train.warmup_fraction=0.05"]),
    "lr3e3_warmup5": ("peak lr 3e-3, warm-up 5%", ["train.lr=3e-3", "train.warmup_fraction=0.05"]),
    "blank_pos": ("blank logit bias +3 at the start (blank likely from step 0)", ["model.blank_bias=3.0"]),
    "blank_neg": ("blank logit bias -3 at the start", ["model.blank_bias=-3.0"]),
    "bilstm": ("bilstm_ctc (3 x 256 BiLSTM, stacked x4 frames)", ["model.name=bilstm_ctc"]),
    "stream": ("lstm_ctc_stream (3 x 320 LSTM, 120 ms look-ahead, the asr-stream recipe)",
               ["model.name=lstm_ctc_stream"]),
    "combo": ("a guess at the best mix: x8 + sentencepiece + sortagrad + warm-up 5% + intermediate CTC",
              ["model.subsample=8", *SPM, "train.sortagrad=true", "train.warmup_fraction=0.05",
               "train.inter_ctc_weight=0.3"]),
    # speechocean762-asr --mitigate (2026-12-07) hinted that batches cut anew each epoch beat fixed ones; the training
    # speakers have about equal shares, so group-balanced by speaker is a near-uniform redraw
    "redraw": ("batches drawn with replacement and cut anew each epoch (group_balanced by speaker, near-equal weights)",
               ["train.sampler=group_balanced"]),
    # the baseline again with other seeds (initialisation, batch order, validation carve): the spread one seed has
    "baseline_seed1": ("the baseline with train.seed=1", ["train.seed=1"]),
    "baseline_seed2": ("the baseline with train.seed=2", ["train.seed=2"]),
    # not about the plateau but about the held-out voices these strings are spoken in (4 training speakers)
    "vtlp": ("vocal-tract-length perturbation: each utterance's mel filterbank warped by 0.85-1.15",
             ["augment.vtlp=[0.85,1.15]"]),
    "vtlp_pitch": ("VTLP 0.85-1.15 and pitch shift up to +-2 semitones on half the utterances",
                   ["augment.vtlp=[0.85,1.15]", "augment.pitch_semitones=2.0"]),
}
LIMITS = {"full": {"train": TRAIN_STRINGS, "test": TEST_STRINGS, "curve": 100},
          "small": {"train": 200, "test": 20, "curve": 10}}


def read_test(root: Path, n: int) -> tuple[list, list[str]]:
    """The first n test strings evenly spaced over the test split: int16 waves and their transcripts."""
    import soundfile as sf
    import torch

    from pocketsphinx_peer import read_kaldi

    rows = read_kaldi(root / "test")
    step = max(1, len(rows) // max(1, n))
    rows = rows[::step][:n]
    waves = [torch.from_numpy(sf.read(r["path"], dtype="int16")[0]) for r in rows]
    return waves, [r["text"] for r in rows]


def curve_callback(run_dir: Path, waves, refs: list[str], every: float):
    """A Lightning callback: greedy WER on (waves, refs) each `every` seconds of training time, off the clock."""
    import lightning.pytorch as pl
    import torch

    from seehear.data.decode import pcm_to_float
    from seehear.evaluation.transcripts import transcript_metrics
    from seehear.speech.decoding import greedy_decode
    from seehear.speech.units import load_units

    class Curve(pl.Callback):
        def __init__(self):
            self.points: list[dict] = []
            self.next = 0.0
            self.units = None

        def measure(self, trainer, module):
            with module.off_clock():
                t0 = time.perf_counter()
                self.units = self.units or load_units(run_dir)
                net = module.model
                was = net.training
                net.eval()
                hyps = []
                with torch.inference_mode():
                    for i in range(0, len(waves), 16):
                        part = waves[i:i + 16]
                        lens = torch.tensor([len(w) for w in part])
                        x = torch.zeros(len(part), int(lens.max()))
                        for k, w in enumerate(part):
                            x[k, :len(w)] = pcm_to_float(w)
                        lp, n = net(x, lens)
                        hyps += [h.text for h in greedy_decode(lp, n, self.units, net.frame_seconds)]
                net.train(was)
                m = transcript_metrics(refs, hyps)
                self.points.append({"train_seconds": round(module.train_seconds, 1), "step": trainer.global_step,
                                    "greedy_wer": round(float(m["wer"]), 4), "greedy_cer": round(float(m["cer"]), 4),
                                    "empty_share": round(sum(not h for h in hyps) / len(hyps), 3),
                                    "eval_seconds": round(time.perf_counter() - t0, 2)})

        def on_train_batch_end(self, trainer, module, *args):
            if module.train_seconds >= self.next:
                self.measure(trainer, module)
                self.next = (len(self.points)) * every

        def on_train_end(self, trainer, module):
            if not self.points or self.points[-1]["step"] != trainer.global_step:
                self.measure(trainer, module)

    return Curve()


def run_name(name: str, seed: int) -> str:
    """A config's run (and result file) name: seed 0 keeps the plain name the earlier probes wrote."""
    return name if seed == 0 else f"{name}-seed{seed}"


def run_config(name: str, root: Path, work: Path, args, waves, refs, seed: int = 0) -> dict:
    import seehear
    from seehear.engine.trainer import extra_callbacks

    what, extra = CONFIGS[name]
    run_dir = work / "runs" / run_name(name, seed)
    # the seed goes first, so a config that names its own train.seed (baseline_seed1) keeps it
    overrides = ["task=transcribe", f"train.time_budget={args.budget}", f"train.threads={args.threads}",
                 "transcribe.tune_decoding=false", *([f"train.seed={seed}"] if seed else []), *extra, *args.set]
    curve = curve_callback(run_dir, waves, refs, every=args.budget / args.points)
    print(f"== {name}: {what} ({args.budget:.0f} s)", file=sys.stderr, flush=True)
    t0 = time.time()
    with extra_callbacks([curve]):
        res = seehear.train(str(root), str(run_dir), overrides=overrides, overwrite=True, progress=False)
    tr = res.meta.get("train", {})
    ctc = tr.get("ctc") or {}
    steps, secs = tr.get("steps") or 0, tr.get("train_seconds") or 0.0
    # the seed the run trained with: the last train.seed override wins (baseline_seed1 names its own)
    used = int(next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("train.seed=")), 0))
    return {"config": name, "train_seed": used, "what": what, "overrides": overrides, "run_dir": str(run_dir),
            "train": {k: tr.get(k) for k in ("steps", "train_seconds", "epochs_run", "stopped_early",
                                              "data_wait_share", "batch_size", "precision", "threads")},
            "steps_per_second": round(steps / secs, 3) if secs else None,
            "plateau": {k: v for k, v in ctc.items() if k != "curve"}, "emit_ratio_curve": ctc.get("curve"),
            "learning_curve": curve.points,
            "final": {k: res.metrics.get(k) for k in ("wer", "cer", "sentence_error_rate", "decoder",
                                                      "utterances", "real_time_factor")},
            "units": res.meta.get("units"), "run_seconds": round(time.time() - t0, 1)}


def first_below(points: list[dict], wer: float):
    return next((p["train_seconds"] for p in points if p["greedy_wer"] <= wer), None)


def write(path: Path, doc: dict) -> None:
    from seehear.atomic import write_json

    write_json(path, doc)


def spread(values: list) -> dict | None:
    """Mean, lowest and highest of the values that exist (a run that never left the plateau has no end time)."""
    got = [v for v in values if v is not None]
    if not got:
        return None
    return {"mean": round(sum(got) / len(got), 4), "min": min(got), "max": max(got), "n": len(got)}


def by_config(rows: list[dict]) -> list[dict]:
    """Each config over its seeds: how many seeds ran, how many left the plateau, and the spread of the figures."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["config"], []).append(r)
    out = [{"config": name, "seeds": sorted(r["train_seed"] for r in rs),
            "left_plateau": sum(r["plateau_end_seconds"] is not None for r in rs),
            "plateau_end_seconds": spread([r["plateau_end_seconds"] for r in rs]),
            "final_wer": spread([r["final_wer"] for r in rs])} for name, rs in groups.items()]
    never = float("inf")
    out.sort(key=lambda g: g["final_wer"]["mean"] if g["final_wer"] else never)
    return out


def summary(out: Path, header: dict) -> dict:
    rows = []
    for f in sorted(out.glob("ctc-*.json")):
        if f.name == "ctc-summary.json":
            continue
        d = json.loads(f.read_text())
        r, p = d["result"], d["result"]["plateau"]
        rows.append({"config": r["config"], "train_seed": r.get("train_seed", 0),  # files before --seeds: seed 0
                     "budget_s": d["budget_s"], "limit": d["limit"],
                     "plateau_end_step": p.get("plateau_end_step"), "plateau_end_seconds": p.get("plateau_end_seconds"),
                     "steps_per_second": r["steps_per_second"],
                     "greedy_wer_curve": [[q["train_seconds"], q["greedy_wer"]] for q in r["learning_curve"]],
                     "seconds_to_greedy_wer_0.5": first_below(r["learning_curve"], 0.5),
                     "seconds_to_greedy_wer_0.2": first_below(r["learning_curve"], 0.2),
                     "final_wer": r["final"].get("wer"), "commit": d.get("commit")})
    never = float("inf")
    rows.sort(key=lambda r: (r["plateau_end_seconds"] if r["plateau_end_seconds"] is not None else never,
                             r["final_wer"] if r["final_wer"] is not None else never))
    return {**header, "order": "plateau end (training seconds), then final WER", "configs": rows,
            "by_config": by_config(rows), "by_config_order": "mean final WER over the seeds"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=sorted(CONFIGS), help="run this config (repeatable); "
                                                                             "default: all")
    ap.add_argument("--budget", type=float, default=300.0, help="training seconds per config (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points", type=int, default=10, help="learning-curve points over the budget")
    ap.add_argument("--limit", choices=sorted(LIMITS), default="full",
                    help="small: 200 training / 20 test strings (plumbing check)")
    ap.add_argument("--seed", type=int, default=0, help="the data's seed (which strings are made)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="train each config with train.seed 0..N-1 (initialisation, batch order; default 1)")
    ap.add_argument("--set", action="append", default=[], help="extra override for every config (dev)")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for ctc-*.json (default bench/results/probes; --limit small: under the work dir)")
    args = ap.parse_args(argv)
    lim = LIMITS[args.limit]
    # the full set is bench/fsdd_connected.py's own data folder (built once, reused while the settings match)
    work = WORK / ("fsdd-connected" if args.limit == "full" else "ctc-probe-small")
    out = args.out or (RESULTS / "probes" if args.limit == "full" else work / "results")
    out.mkdir(parents=True, exist_ok=True)
    root = work / "data"
    spec = make_data(root, TEST_SPEAKERS, lim["train"], lim["test"], args.seed)
    waves, refs = read_test(root, lim["curve"])
    header = {"benchmark": "ctc-probe", "command": command(), "commit": commit(), "limit": args.limit,
              "budget_s": args.budget, "threads": args.threads}
    from seehear.engine.run_folder import machine, versions

    header.update(machine=machine(), versions=versions())
    header["data"] = {**spec, **data_summary(root), "curve_strings": len(waves)}
    for seed in range(args.seeds):  # every config once before any config's next seed: a cut-short run still ranks
        for name in args.only or list(CONFIGS):
            result = run_config(name, root, work, args, waves, refs, seed)
            write(out / f"ctc-{run_name(name, seed)}.json", {**header, "result": result})
            p = result["plateau"]
            print(f"== {run_name(name, seed)}: plateau ended at step {p.get('plateau_end_step')} "
                  f"({p.get('plateau_end_seconds')} s), "
                  f"final WER {result['final'].get('wer')}, "
                  f"curve {[q['greedy_wer'] for q in result['learning_curve']]}", file=sys.stderr, flush=True)
    doc = summary(out, {k: v for k, v in header.items() if k not in ("budget_s",)})
    write(out / "ctc-summary.json", doc)
    print(json.dumps([{k: r[k] for k in ("config", "plateau_end_step", "plateau_end_seconds", "final_wer")}
                      for r in doc["configs"]], indent=1))
    print(json.dumps(doc["by_config"], indent=1))
    print(f"written {out}/ctc-*.json")


if __name__ == "__main__":
    main()

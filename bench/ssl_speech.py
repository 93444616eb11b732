"""Self-supervised speech pretraining (BEST-RQ, `seehear pretrain AUDIO_DIR`) against what it buys downstream, on FSDD
(CC BY-SA 4.0, Jakobovski et al.) with voices never heard.

Pretraining: every FSDD recording of the speakers NOT in the downstream test set (no labels used), for each budget in
--pretrain-minutes. Downstream, each with and without `--from` the pretrained run, the same model and features:
  * keyword classification with few labels: one take per word per training speaker (40 clips), tested on every
    recording of the held-out speakers (george, jackson); model ssl_encoder (the encoder + mean pooling + linear);
  * connected digits (strings as bench/fsdd_connected.py builds them: 3-7 digits, pauses, light noise), a few
    hundred training strings of the training speakers, test strings of the held-out ones; CTC with greedy decoding
    of the same encoder (conformer_ctc_tiny).
Reported: fewlabel_gain = keyword accuracy from the pretrained encoder minus from scratch (goal >= 0.10), the WER
either way, and the learning curve: downstream accuracy against pretraining minutes, with each pretraining run's
held-out masked-prediction accuracy.

    .venv/bin/python bench/ssl_speech.py                     # → bench/results/ssl-speech.json (~75 min)
    .venv/bin/python bench/ssl_speech.py --pretrain-minutes 10   # one pretraining budget (~30 min)
    .venv/bin/python bench/ssl_speech.py --limit small       # plumbing, ~3 min → /tmp/seehear-bench/results/
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from common import DATA, WORK, Bench, learning_curve, need

RECORDINGS = DATA / "fsdd" / "recordings"
NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav$")
TEST_SPEAKERS = ["george", "jackson"]  # as bench/fsdd_connected.py: the hardest voices held out
GOAL_GAIN = 0.10
FULL = {"pretrain_minutes": [5.0, 15.0, 30.0], "kws_seconds": 120, "asr_seconds": 300, "asr_train": 300,
        "asr_test": 200, "pool": None, "kws_test": None}
SMALL = {"pretrain_minutes": [0.5], "kws_seconds": 20, "asr_seconds": 25, "asr_train": 40, "asr_test": 10,
         "pool": 240, "kws_test": 60}
COMMON = ["train.threads=2", "data.workers=2"]
# the features the pretraining recipe (audio-ssl) makes: the scratch runs use them too, so only the weights differ
FEATURES = ["audio.features=logmel", "audio.n_mels=80", "audio.f_max=8000.0", "audio.normalize=utterance"]
ENCODER = "conformer_ctc_tiny"
# the budget ends pretraining, not the audio-ssl recipe's 30 epochs (those took 164 s here), so that minutes mean
# minutes on the learning curve; the schedule follows the clock (engine/base_module.progress)
PRETRAIN_EPOCH_CAP = 100_000


def listing() -> list[dict]:
    rows = []
    for f in sorted(need(RECORDINGS).glob("*.wav"), key=lambda p: p.name):
        m = NAME.match(f.name)
        if m:
            rows.append({"path": str(f.resolve()), "label": m["digit"], "speaker": m["speaker"],
                         "take": int(m["take"])})
    return rows


def pool_dir(rows: list[dict], limit: int | None) -> Path:
    """Pretraining audio: the training speakers' recordings, as links in one flat folder (no labels)."""
    d = WORK / "ssl-speech" / f"pool-{limit or 'all'}"
    d.mkdir(parents=True, exist_ok=True)
    pool = [r for r in rows if r["speaker"] not in TEST_SPEAKERS]
    pool = pool[:: max(1, len(pool) // limit)][:limit] if limit else pool
    for r in pool:
        link = d / Path(r["path"]).name
        if not link.exists():
            link.symlink_to(r["path"])
    return d


def keyword_manifest(rows: list[dict], test_limit: int | None) -> Path:
    """Few labels: take 0 of every word of every training speaker (40 clips); test: the held-out speakers."""
    train = [r for r in rows if r["speaker"] not in TEST_SPEAKERS and r["take"] == 0]
    test = [r for r in rows if r["speaker"] in TEST_SPEAKERS]
    test = test[:: max(1, len(test) // test_limit)][:test_limit] if test_limit else test
    out = WORK / "ssl-speech" / f"kws-{test_limit or 'all'}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker", "split"])
        w.writerows([r["path"], r["label"], r["speaker"], s] for s, part in (("train", train), ("test", test))
                    for r in part)
    return out


def classify(data: Path, out: Path, seconds: float, from_run: Path | None) -> dict:
    import seehear

    r = seehear.train(str(data), str(out), from_run=str(from_run) if from_run else None, overwrite=True,
                      progress=False, overrides=[*COMMON, *FEATURES, f"train.time_budget={seconds}",
                                                 "model.name=ssl_encoder", f"model.kwargs={{encoder: {ENCODER}}}"])
    return {"accuracy": round(r.metrics["accuracy"], 4), "train_seconds": r.meta["train"]["train_seconds"]}


def transcribe(data: Path, out: Path, seconds: float, from_run: Path | None) -> dict:
    import seehear

    r = seehear.train(str(data), str(out), task="transcribe", overwrite=True, progress=False,
                      from_run=str(from_run) if from_run else None,
                      overrides=[*COMMON, *FEATURES, f"model.name={ENCODER}", f"train.time_budget={seconds}",
                                 "transcribe.decoder=greedy", "transcribe.tune_decoding=false",
                                 f"data.test_files={data / 'test.lst'}"])
    return {"wer": r.metrics.get("wer"), "cer": r.metrics.get("cer"), "train_seconds": r.meta["train"]["train_seconds"],
            "learning_curve": learning_curve(out, "val_uer")}


def connected_digits(n_train: int, n_test: int, seed: int) -> Path:
    """Kaldi dirs from bench/fsdd_connected.py's builder; one folder holding both, with test.lst naming the test
    files (so one run trains on train and measures on test)."""
    from fsdd_connected import make_data

    root = WORK / "ssl-speech" / f"connected-{n_train}-{n_test}"
    make_data(root, TEST_SPEAKERS, n_train, n_test, seed)
    both = root / "all"
    both.mkdir(exist_ok=True)
    for name in ("wav.scp", "text", "utt2spk"):
        (both / name).write_text((root / "train" / name).read_text() + (root / "test" / name).read_text())
    tests = [line.split(" ", 1)[1].strip() for line in (root / "test" / "wav.scp").read_text().splitlines()]
    (both / "test.lst").write_text("\n".join(tests) + "\n")
    return both


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", choices=["small"], help="small: a plumbing check in ~3 min")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pretrain-minutes", help="comma-separated pretraining budgets in minutes (default "
                                               f"{','.join(f'{m:g}' for m in FULL['pretrain_minutes'])})")
    args = ap.parse_args(argv)
    s = dict(SMALL if args.limit else FULL)
    if args.pretrain_minutes:
        s["pretrain_minutes"] = [float(m) for m in args.pretrain_minutes.split(",")]
    name = "ssl-speech-small" if args.limit else "ssl-speech"
    from seehear.tasks.pretrain import pretrain

    rows = listing()
    pool, kws = pool_dir(rows, s["pool"]), keyword_manifest(rows, s["kws_test"])
    digits = connected_digits(s["asr_train"], s["asr_test"], args.seed)
    runs = WORK / "ssl-speech" / "runs"
    with Bench(name, results=WORK / "results" if args.limit else None) as b:  # a smoke run never replaces results
        b.figures["settings"] = {**s, "test_speakers": TEST_SPEAKERS, "encoder": ENCODER}
        print("== keyword classification from scratch", file=sys.stderr, flush=True)
        scratch = classify(kws, runs / "kws-scratch", s["kws_seconds"], None)
        print("== connected digits from scratch", file=sys.stderr, flush=True)
        asr_scratch = transcribe(digits, runs / "asr-scratch", s["asr_seconds"], None)
        curve = []
        for minutes in s["pretrain_minutes"]:
            print(f"== pretraining {minutes} min", file=sys.stderr, flush=True)
            ssl = runs / f"ssl-{minutes:g}m"
            r = pretrain(str(pool), str(ssl), time_budget=minutes * 60, epochs=PRETRAIN_EPOCH_CAP, overwrite=True,
                         progress=False,
                         overrides=[*COMMON, f"train.seed={args.seed}"])
            point = {"pretrain_minutes": minutes, "pretrain_train_seconds": r.meta["train"]["train_seconds"],
                     "masked_accuracy": r.metrics.get("masked_accuracy"),
                     "majority_code_accuracy": r.metrics.get("majority_code_accuracy"),
                     "keyword": classify(kws, runs / f"kws-from-{minutes:g}m", s["kws_seconds"], ssl)}
            point["fewlabel_gain"] = round(point["keyword"]["accuracy"] - scratch["accuracy"], 4)
            point["asr"] = transcribe(digits, runs / f"asr-from-{minutes:g}m", s["asr_seconds"], ssl)
            curve.append(point)
            print(point, file=sys.stderr, flush=True)
        best = max(curve, key=lambda p: p["pretrain_minutes"])
        b.figures.update(keyword_scratch=scratch, asr_scratch=asr_scratch, learning_curve=curve,
                         pretrain_files=sum(1 for _ in pool.glob("*.wav")))
        b.goal("fewlabel_gain", GOAL_GAIN, best["fewlabel_gain"])
        if args.limit:
            b.notes.append("--limit small: a plumbing check on a subset with tiny budgets, not a measurement")


if __name__ == "__main__":
    main()

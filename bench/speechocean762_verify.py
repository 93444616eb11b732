"""Speaker verification on speechocean762 (Zhang et al. 2021, "speechocean762: An Open-Source Non-native English
Speech Corpus For Pronunciation Assessment"): Mandarin speakers (children and adults) reading English, 16 kHz
Ogg/Opus. The corpus's train/ and test/ Kaldi dirs hold different speakers (125 each, 20 utterances each), so the
test is on voices never heard in training.

seehear: the `speakers` recipe (ECAPA-TDNN over 80 log-mel bands, AAM-softmax on 3 s crops) trained on train/ within
a time budget, then cosine scoring of whole-utterance embeddings. Trials among test/ speakers: every same-speaker
pair, and ten times as many different-speaker pairs drawn at random (fixed seed). Reported: EER, minDCF (p_target
0.01, normalised), training seconds, peak memory.

Peer, on the same trials: the classic utterance vector of librosa MFCCs (40 + deltas, mean and std over time,
bench/peer.py), standardised with statistics of the training set, cosine scoring — no i-vectors, nothing trained.

    .venv/bin/python bench/speechocean762_verify.py                         # → bench/results/speechocean762-verify.json
    .venv/bin/python bench/speechocean762_verify.py --budget 30 --max-speakers 20   (smoke run)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from common import DATA, WORK, Bench, need
from peer import PEER, mfcc_stats, write_manifest

CORPUS = DATA / "speechocean762"
BUDGET = 900  # seconds of training
NONTARGET_RATIO = 10.0  # different-speaker trials per same-speaker trial
PEER_NORM_FILES = 500  # training files whose MFCC vectors give the peer's standardisation
WORK_DIR = WORK / "speechocean762-verify"


def utterances(split: str) -> list[dict]:
    """Rows path,label,speaker of one Kaldi dir (label = speaker: the manifest needs a label column)."""
    d = need(CORPUS / split)
    spk = dict(line.split(maxsplit=1) for line in (d / "utt2spk").read_text().splitlines() if line.strip())
    rows = []
    for line in (d / "wav.scp").read_text().splitlines():
        if not line.strip():
            continue
        utt, wav = line.split(maxsplit=1)
        path = CORPUS / wav.strip()
        rows.append({"path": str(path), "label": spk[utt].strip(), "speaker": spk[utt].strip()})
    return rows


def first_speakers(rows: list[dict], n: int | None) -> list[dict]:
    if not n:
        return rows
    keep = set(sorted({r["speaker"] for r in rows})[:n])
    return [r for r in rows if r["speaker"] in keep]


def peer_embeddings(test_rows, train_rows) -> tuple[np.ndarray, float]:
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        feats = np.stack(list(pool.map(lambda r: mfcc_stats(r["path"], sr=16000), test_rows)))
        rng = np.random.default_rng(0)
        norm_rows = [train_rows[i] for i in rng.permutation(len(train_rows))[:PEER_NORM_FILES]]
        ref = np.stack(list(pool.map(lambda r: mfcc_stats(r["path"], sr=16000), norm_rows)))
    mu, sd = ref.mean(0), ref.std(0) + 1e-8
    return (feats - mu) / sd, time.time() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=BUDGET, help=f"training seconds (default {BUDGET})")
    ap.add_argument("--max-speakers", type=int, help="use only the first N speakers of train/ and of test/ (smoke)")
    ap.add_argument("--set", action="append", default=[], help="extra seehear override key=value (dev)")
    ap.add_argument("--no-peer", action="store_true", help="skip the MFCC peer (dev)")
    args = ap.parse_args(argv)

    import seehear
    import seehear.tasks.speakers as spk
    from seehear.evaluation.verification import verification_metrics

    train_rows = first_speakers(utterances("train"), args.max_speakers)
    test_rows = first_speakers(utterances("test"), args.max_speakers)
    name = "speechocean762-verify"
    with Bench(name) as b:
        manifest = write_manifest(train_rows + test_rows, lambda r, t={id(x) for x in test_rows}: id(r) in t,
                                  WORK_DIR / "manifest.csv")
        overrides = ["task=speakers", f"train.time_budget={args.budget}", "train.epochs=1000", "train.threads=2",
                     *args.set]
        b.figures["data"] = {"train_files": len(train_rows), "train_speakers": len({r["speaker"] for r in train_rows}),
                             "test_files": len(test_rows), "test_speakers": len({r["speaker"] for r in test_rows}),
                             "credit": "speechocean762, Zhang et al. 2021 (Apache-2.0)"}
        load = round(os.getloadavg()[0], 2)
        t0 = time.time()
        res = seehear.train(str(manifest), str(WORK_DIR / "run"), overrides=overrides, overwrite=True, progress=True)
        tr = res.meta["train"]
        t1 = time.time()
        emb = spk.embed(res.run_dir, [r["path"] for r in test_rows])
        embed_seconds = time.time() - t1
        speakers = [r["speaker"] for r in test_rows]
        ours = verification_metrics(emb, speakers, nontarget_ratio=NONTARGET_RATIO, seed=0)
        meta = json.loads((res.run_dir / "meta.json").read_text())
        b.figures["seehear"] = {
            **ours, "train_seconds": tr["train_seconds"], "train_wall_seconds": tr["wall_seconds"],
            "epochs": tr["epochs_run"], "steps": tr["steps"], "precision": tr["precision"],
            "embed_seconds": round(embed_seconds, 1), "run_seconds": round(time.time() - t0, 1), "load_before": load,
            "params": meta["model"]["params"], "overrides": overrides,
            "settings": {k: meta["config"][k] for k in ("model", "audio", "augment", "train", "speakers")}}
        print("seehear", {k: ours[k] for k in ("eer", "min_dcf", "n_trials")}, file=sys.stderr, flush=True)
        if not args.no_peer:
            pe, secs = peer_embeddings(test_rows, train_rows)
            peer = verification_metrics(pe, speakers, nontarget_ratio=NONTARGET_RATIO, seed=0)
            b.figures["peer"] = {**peer, "features": "librosa MFCC mean+std (+deltas), train-set standardisation, "
                                                     "cosine", "settings": PEER, "seconds": round(secs, 1)}
            print("peer", {k: peer[k] for k in ("eer", "min_dcf")}, file=sys.stderr, flush=True)
        b.goal("eer", 0.08, ours["eer"], higher_is_better=False)
        b.goal("train_seconds", args.budget, tr["train_seconds"], higher_is_better=False, unit="s")
        b.notes.append(f"command: python bench/speechocean762_verify.py {' '.join(sys.argv[1:])}".rstrip())
        if args.max_speakers:
            b.notes.append(f"smoke run: only the first {args.max_speakers} speakers of train/ and test/")


if __name__ == "__main__":
    main()

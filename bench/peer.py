"""The classic speech peer both audio benchmarks run beside seehear, and the manifest they train seehear from.

Peer: librosa MFCC (40 coefficients + deltas, mean and std over time) + scikit-learn StandardScaler + RBF SVC."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

PEER = {"n_mfcc": 40, "n_mels": 40, "win_seconds": 0.032, "hop_seconds": 0.010, "C": 10.0}


def write_manifest(rows: list[dict], is_test, path: Path) -> Path:
    """path,label,speaker,split with split = test where is_test(row), else train."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker", "split"])
        for r in rows:
            w.writerow([r["path"], r["label"], r["speaker"], "test" if is_test(r) else "train"])
    return path


def mfcc_stats(path: str, sr: int | None = None) -> np.ndarray:
    """The classic utterance vector: mean and std over time of MFCCs and their deltas."""
    import librosa

    y, sr = librosa.load(path, sr=sr)
    n_fft = int(round(PEER["win_seconds"] * sr))
    hop = int(round(PEER["hop_seconds"] * sr))
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=PEER["n_mfcc"], n_mels=PEER["n_mels"], n_fft=n_fft, hop_length=hop)
    # delta needs an odd width no longer than the clip: very short recordings get a narrower one
    d = librosa.feature.delta(m, width=min(9, m.shape[1] - (1 - m.shape[1] % 2)), mode="nearest")
    return np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)])


def run_peer(feats: np.ndarray, y: np.ndarray, test: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    t0 = time.time()
    clf = make_pipeline(StandardScaler(), SVC(C=PEER["C"], gamma="scale"))
    clf.fit(feats[~test], y[~test])
    pred = clf.predict(feats[test])
    uar = round(float(balanced_accuracy_score(y[test], pred)), 4)
    return {"accuracy": round(float((pred == y[test]).mean()), 4), "balanced_accuracy": uar, "uar": uar,
            "seconds": round(time.time() - t0, 2)}


def error_ratio(ours: float, peer: float) -> float | None:
    """seehear's error / the peer's error (< 1: seehear makes fewer mistakes)."""
    return round((1 - ours) / (1 - peer), 3) if peer < 1 else None


def peer_features(rows: list[dict], enabled: bool = True) -> tuple[np.ndarray | None, dict]:
    """Peer features for every recording (None when the peer is switched off) and the peer's description."""
    info = {"what": "librosa MFCC (40 + deltas, mean+std over time) + StandardScaler + RBF SVC", **PEER}
    if not enabled:
        return None, info
    t0 = time.time()
    feats = np.stack([mfcc_stats(r["path"]) for r in rows])
    info["feature_seconds"] = round(time.time() - t0, 1)
    return feats, info

"""The speech-to-text peer: pocketsphinx 5.1.1 used as a new user would, with the en-us acoustic model, language model
and dictionary shipped inside the pip package (nothing downloaded, no setting changed), on 16 kHz mono int16 audio.

Also the one text normaliser and WER/CER scorer both transcription benchmarks apply to every system, so that seehear
and the peer are scored identically.

    .venv/bin/python bench/pocketsphinx_peer.py                 # first 20 speechocean762 test sentences: WER, CER, RTF
    .venv/bin/python bench/pocketsphinx_peer.py --limit 100
"""
from __future__ import annotations

import argparse
import re
import time
from math import gcd
from pathlib import Path

import numpy as np

RATE = 16000  # the rate the shipped en-us acoustic model was trained at


def normalize(text: str) -> str:
    """Upper case, punctuation gone except apostrophes (DON'T stays one word), single spaces."""
    text = re.sub(r"[^\w\s']|_", " ", text.upper())
    return " ".join(text.split())


def score(refs: list[str], hyps: list[str]) -> dict:
    """jiwer WER and CER over the whole set (errors / reference words or characters), after normalize().
    An empty reference would make jiwer raise; none of ours are empty, so that stays an error."""
    import jiwer

    r, h = [normalize(t) for t in refs], [normalize(t) for t in hyps]
    return {"wer": round(float(jiwer.wer(r, h)), 4), "cer": round(float(jiwer.cer(r, h)), 4),
            "sentence_error_rate": round(float(np.mean([a != b for a, b in zip(r, h)])), 4), "utterances": len(r)}


def load_16k(path: str | Path) -> np.ndarray:
    """Any file soundfile reads (WAV, Ogg/Opus, FLAC) → 16 kHz mono int16, the input pocketsphinx's model expects."""
    import soundfile as sf
    from scipy.signal import resample_poly

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(1)
    if sr != RATE:
        g = gcd(sr, RATE)
        x = resample_poly(x, RATE // g, sr // g).astype(np.float32)
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


class Peer:
    """One pocketsphinx Decoder with its defaults, reused for every utterance (as its documentation does)."""

    def __init__(self):
        from pocketsphinx import Decoder

        t0 = time.process_time()
        self.decoder = Decoder(loglevel="FATAL")  # defaults: en-us model, en-us.lm.bin, cmudict-en-us.dict
        self.load_cpu_seconds = round(time.process_time() - t0, 2)

    def transcribe(self, audio: np.ndarray) -> str:
        d = self.decoder
        d.start_utt()
        d.process_raw(audio.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


def transcribe_files(paths: list, timing: dict | None = None) -> list[str]:
    """Transcripts of `paths`, in order. Fills `timing` (when given) with the audio seconds and the decoder's CPU
    seconds: pocketsphinx runs on one thread, so CPU time / audio time is its real-time factor on one core, and CPU
    time (unlike wall time) barely moves when other processes share the machine. Decoding the audio is not counted."""
    peer = Peer()
    texts, audio_s, cpu_s, wall_s = [], 0.0, 0.0, 0.0
    for p in paths:
        x = load_16k(p)
        c, w = time.process_time(), time.perf_counter()
        texts.append(peer.transcribe(x))
        cpu_s += time.process_time() - c
        wall_s += time.perf_counter() - w
        audio_s += len(x) / RATE
    if timing is not None:
        timing.update(audio_seconds=round(audio_s, 1), cpu_seconds=round(cpu_s, 1), wall_seconds=round(wall_s, 1),
                      rtf_one_core=round(cpu_s / max(audio_s, 1e-9), 4),
                      rtf_wall=round(wall_s / max(audio_s, 1e-9), 4), model_load_cpu_seconds=peer.load_cpu_seconds)
    return texts


def describe() -> dict:
    import pocketsphinx

    try:
        from importlib.metadata import version
        v = version("pocketsphinx")
    except Exception:  # noqa: BLE001 - a version string is nice to have, not needed
        v = getattr(pocketsphinx, "__version__", "?")
    return {"what": "pocketsphinx with its shipped en-us acoustic model, en-us.lm.bin and cmudict-en-us.dict, "
                    "all defaults (as a new user would)", "version": v, "input": "16 kHz mono int16 via soundfile"}


def run(paths: list, refs: list[str], keep: int = 10) -> dict:
    """The peer on (paths, refs): scores, timing and the first `keep` reference/hypothesis pairs."""
    timing: dict = {}
    hyps = transcribe_files(paths, timing)
    return {**describe(), **score(refs, hyps), **timing,
            "examples": [{"ref": normalize(r), "hyp": normalize(h)} for r, h in list(zip(refs, hyps))[:keep]]}


def read_kaldi(kaldi_dir: Path, base: Path | None = None) -> list[dict]:
    """Rows {utt, path, text, speaker} of a Kaldi dir in wav.scp order; relative wav.scp paths are resolved against
    `base` (speechocean762 keeps them relative to the corpus root, i.e. the dir's parent)."""
    base = base or kaldi_dir.parent

    def table(name: str) -> dict:
        f = kaldi_dir / name
        if not f.exists():
            return {}
        return dict(ln.rstrip("\n").split(None, 1) for ln in f.read_text().splitlines() if ln.strip())

    text, spk = table("text"), table("utt2spk")
    rows = []
    for utt, path in table("wav.scp").items():
        p = Path(path.strip())
        rows.append({"utt": utt, "path": str(p if p.is_absolute() else base / p), "text": text.get(utt, "").strip(),
                     "speaker": spk.get(utt, "").strip()})
    return rows


def main(argv=None) -> None:
    from common import DATA, need

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "speechocean762" / "test", help="Kaldi dir (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=20, help="first N utterances (default %(default)s)")
    args = ap.parse_args(argv)
    rows = read_kaldi(need(args.data))[: args.limit]
    res = run([r["path"] for r in rows], [r["text"] for r in rows], keep=args.limit)
    for ex in res.pop("examples"):
        print(f"REF {ex['ref']}\nHYP {ex['hyp']}\n")
    print({k: v for k, v in res.items() if k != "what"})


if __name__ == "__main__":
    main()

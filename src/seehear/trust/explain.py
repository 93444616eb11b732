"""`seehear explain RUN FILE...`: where the model looked, as overlay PNGs (for audio, over the log-mel
spectrogram, plus a WAV that keeps only the moments the model's evidence came from)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from seehear.data.cache import decode_all
from seehear.data.decode import pcm_to_float
from seehear.data.sources import list_files
from seehear.engine.run_folder import load_run
from seehear.errors import InputMismatchError, RunError, SeehearError
from seehear.trust.attribution import METHODS, attribute, features_of


def require_gradients(run) -> None:
    """Attributions need the PyTorch model; an exported file holds no gradients."""
    p = Path(run)
    if p.suffix.lower() == ".onnx" or (p.is_file() and p.suffix.lower() in (".onnx", ".ort")):
        raise RunError(f"{run} is an ONNX export and gives no gradients: explain the run folder it was exported "
                       f"from (seehear explain runs/NAME FILE...)")
    if p.is_file():
        raise RunError(f"{run} is a file; pass the run folder that `seehear train` created")


def _stem(key: str, i: int) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(key.split("#")[0]).stem)[:60] or "input"
    return f"{i:03d}_{name}" + (f"_{key.split('#', 1)[1]}" if "#" in key else "")


def evidence_wave(wave: torch.Tensor, amap: torch.Tensor, hop: int) -> torch.Tensor:
    """The recording gated by where the evidence is over time: frame weights (the map summed over frequency,
    scaled to 0..1 and smoothed over ~5 frames) stretched to samples. Silence where the model did not look."""
    w = amap.clamp(min=0).sum(0)
    w = torch.nn.functional.avg_pool1d(w[None, None], 5, 1, 2, count_include_pad=False)[0, 0]
    w = w / (w.max() + 1e-12)
    gain = torch.repeat_interleave(w, hop)[: len(wave)]
    gain = torch.nn.functional.pad(gain, (0, len(wave) - len(gain)), value=float(w[-1]) if len(w) else 0.0)
    return wave * gain


def _write_wav(path: Path, wave: np.ndarray, sr: int) -> None:
    import soundfile as sf

    from seehear.engine.checkpoint import atomic_write

    atomic_write(path, lambda tmp: sf.write(tmp, wave, sr, format="WAV", subtype="PCM_16"))


def explain_tensors(model, x: torch.Tensor, method: str = "gradcam", target=None, batch_size: int = 16) -> dict:
    """Attribution maps and predictions for raw inputs: {maps, target, probs, method, note, features}."""
    maps, tgt, used, note = attribute(model, x, target=target, method=method, batch_size=batch_size)
    with torch.no_grad():
        f = features_of(model, x)
        probs = torch.softmax((model.backbone(f) / model.temperature).float(), 1)
    return {"maps": maps, "target": tgt, "probs": probs.cpu(), "method": used, "note": note, "features": f.cpu()}


def explain(run, files, *, method: str = "gradcam", out, progress: bool = False) -> list[dict]:
    """One overlay PNG per input file in OUT (and, for audio, an evidence WAV); returns a row per file with the
    predicted label, its probability and what was written. Unreadable files get an `error` row."""
    if method not in METHODS:
        raise SeehearError(f"--method {method!r} unknown; use one of {', '.join(METHODS)}")
    require_gradients(run)
    loaded = load_run(run)
    if loaded.meta.get("task", "classify") != "classify":
        raise RunError(f"{run} is a {loaded.meta.get('task')} run; explanations are for classification runs")
    if loaded.modality == "frames":
        raise RunError(f"{run} recognises image sequences: trust reports and explanations are for images and audio "
                       f"so far (its report.html and metrics.json hold its accuracy)")
    source = list_files([str(f) for f in ([files] if isinstance(files, (str, Path)) else files)])
    if source.modality != loaded.modality:
        raise InputMismatchError(f"{run} recognises {loaded.modality}, but the input is {source.modality}: give "
                                 f"it {loaded.modality} files")
    decoded = decode_all(source.records, loaded.cfg, loaded.modality, workers=loaded.cfg.data.workers,
                         progress=progress)
    out = Path(out)
    rows: list[dict] = []
    if decoded.keep:
        from seehear.trust.plots import plot_overlays

        model = loaded.model.float()
        e = explain_tensors(model, decoded.x, method)
        audio = loaded.modality == "audio"
        for j, i in enumerate(decoded.keep):
            key = source.records[i].key
            c = int(e["target"][j])
            p = float(e["probs"][j, c])
            stem = _stem(key, j)
            item = e["features"][j, 0].numpy() if audio else decoded.x[j].numpy()
            png = plot_overlays([item], [e["maps"][j].numpy()], [f"{loaded.labels[c]} {p:.2f} ({e['method']})"],
                                loaded.modality, out / f"{stem}.{e['method']}.png")
            row = {"file": key, "label": loaded.labels[c], "probability": round(p, 4), "method": e["method"],
                   "png": str(png)}
            if audio:
                wave = pcm_to_float(decoded.x[j])
                ev = evidence_wave(wave, e["maps"][j], loaded.cfg.audio.hop_length)
                wav = out / f"{stem}.evidence.wav"
                _write_wav(wav, ev.numpy(), loaded.cfg.audio.sample_rate)
                row["wav"] = str(wav)
            if e["note"]:
                row["note"] = e["note"]
            rows.append(row)
    for key, reason in decoded.skipped:
        rows.append({"file": key, "error": reason})
    return rows

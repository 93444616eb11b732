"""Audio-image classification (`--modality audio-image`): a label per (image, recording) pair, over the
classification lifecycle (task classify: the run folder, calibration, metrics.json and report.html are
classify's). What differs: the pairs manifest (data/pairs.py), the fused model (models/fusion.py), its training
step (engine/fusion.py), and metrics.json's accuracy with the image alone and the audio alone (the other input
marked absent). predict takes an image, a recording or both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from seehear.atomic import write_json
from seehear.data.pairs import MODALITY, decode_one, decode_pairs, is_pairs_manifest, load_pairs
from seehear.data.records import AUDIO_EXTS, IMAGE_EXTS, Record, Source
from seehear.data.sources import require_trainable
from seehear.data.splits import find_leakage, splits_for
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import read_json
from seehear.engine.fusion import VIEWS, fit_fusion, fusion_logits
from seehear.engine.trainer import set_threads
from seehear.errors import ConfigError, DataError, InputMismatchError
from seehear.models.recognizer import build_recognizer, input_spec
from seehear.recipes import deep_merge, resolve, user_settings
from seehear.tasks.base import Prepared
from seehear.tasks.classify import Classify, auto_settings, top_k

RECIPE = "audio-image"


def asked(data, config, overrides: Sequence[str], out, resume: bool) -> bool:
    """Whether a train call is for audio-image pairs: --modality / --set modality=audio-image, the config's
    modality, the resumed run's, or a manifest with image and audio columns."""
    for a in overrides:
        if a.split("=", 1)[0].strip() == "modality":
            return a.split("=", 1)[1].strip() == MODALITY
    given = user_settings(config).get("modality")
    if given is not None:
        return given == MODALITY
    if resume and (Path(out) / "config.yaml").is_file():
        return _config_modality(Path(out) / "config.yaml") == MODALITY
    return is_pairs_manifest(data)


def _config_modality(path: Path):
    import yaml

    try:
        return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("modality")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def is_fusion_run(run) -> bool:
    f = Path(run) / "meta.json"
    meta = read_json(f) if f.is_file() else None
    return isinstance(meta, dict) and meta.get("modality") == MODALITY


# What the fused training step does not do (yet): refused in one line rather than silently ignored.
_UNSUPPORTED = (("train.adversarial", lambda c: c.train.adversarial != "none"),
                ("augment.mixup / augment.cutmix", lambda c: c.augment.mixup > 0 or c.augment.cutmix > 0),
                ("data.unlabelled (--unlabelled)", lambda c: bool(c.data.unlabelled)),
                ("model.init_from (--from)", lambda c: bool(c.model.init_from)),
                ("train.sampler / class weights", lambda c: c.train.sampler != "none" or c.train.class_weights
                 or c.train.drw is not None),
                ("train.devices > 1", lambda c: c.train.devices > 1))


class Fusion(Classify):
    name = "classify"  # a classification run: evaluate, predict and report treat it as one

    def load(self, data, label_pattern, modality="auto"):
        if label_pattern:
            raise ConfigError("--label-pattern does not apply to audio-image pairs: the manifest's label column is "
                              "the label")
        return require_trainable(load_pairs(data))

    def resolve(self, source, user, overrides):
        audio_only = Source([Record(r.audio) for r in source.records], "audio", "files", source.root)
        _, auto = auto_settings(audio_only)  # the clip length that covers 90% of the recordings
        cfg = resolve(RECIPE, deep_merge(auto, user), list(overrides))
        if cfg.model.name not in ("fusion", "auto"):
            raise ConfigError(f"--model {cfg.model.name}: an audio-image run has two models; choose them with "
                              f"--set fusion.image_model=NAME and --set fusion.audio_model=NAME")
        cfg.modality, cfg.model.name = MODALITY, "fusion"
        cfg.model.kwargs = {}
        bad = [name for name, on in _UNSUPPORTED if on(cfg)]
        if bad:
            raise ConfigError(f"{', '.join(bad)}: not available for --modality {MODALITY}; leave it at its default")
        if not 0.0 <= cfg.fusion.modality_dropout < 1.0:
            raise ConfigError(f"fusion.modality_dropout must be in [0, 1), got {cfg.fusion.modality_dropout}")
        if not 0.0 <= cfg.fusion.degrade_prob <= 1.0:
            raise ConfigError(f"fusion.degrade_prob must be in [0, 1], got {cfg.fusion.degrade_prob}")
        return cfg, RECIPE

    def prepare(self, source, cfg, out, resume, progress):
        from seehear.features.image import channel_stats

        records, labels = source.records, source.labels
        splits = splits_for(records, cfg.data, cfg.train.seed, out / "split.json", resume)
        leaks = find_leakage(records, splits)  # identical images in train and held-out pairs
        decoded = decode_pairs(records, cfg, workers=cfg.data.workers, progress=progress)
        lab_idx = {l: i for i, l in enumerate(labels)}
        row = {rec_i: row_i for row_i, rec_i in enumerate(decoded.keep)}
        y_all = torch.tensor([lab_idx[r.label] for r in records], dtype=torch.long)

        def part(name):
            ridx = [i for i in splits.get(name, []) if i in row]
            rows = [row[i] for i in ridx]
            return decoded.image[rows], decoded.audio[rows], y_all[ridx], ridx

        parts = {name: part(name) for name in ("train", "valid", "test")}
        if len(parts["train"][2]) == 0:
            raise DataError(f"no training pairs could be decoded from {source.root} ({len(decoded.skipped)} pairs "
                            f"skipped; see skipped.json)")
        mean, std = channel_stats(parts["train"][0])
        norm = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
        net = build_recognizer(cfg, labels, MODALITY, norm)
        per_class = torch.bincount(parts["train"][2], minlength=len(labels))
        meta = {"modality": MODALITY, "labels": labels, "norm_stats": norm,
                "input": {"modality": MODALITY, "image": input_spec(cfg, "image"), "audio": input_spec(cfg, "audio")},
                "model": {"fusion": {"mode": cfg.fusion.mode, "image_model": cfg.fusion.image_model,
                                     "audio_model": cfg.fusion.audio_model}},
                "data": {"counts": {k: len(v) for k, v in splits.items()}, "leakage": len(leaks),
                         "train_per_class": dict(zip(labels, per_class.tolist()))},
                "start": {"kind": "scratch", "source": None,
                          "why": "audio-image runs train both branches from scratch"}}
        return Prepared(net, meta, decoded.skipped, {"parts": parts, "records": records, "leaks": leaks})

    def fit(self, p, cfg, out, resume, progress):
        tr, va = p.state["parts"]["train"], p.state["parts"]["valid"]
        return fit_fusion(p.model, cfg, tr[:3], va[:3] if len(va[2]) else None, out, resume=resume,
                          progress=progress)

    def measure(self, p, cfg, out):
        from seehear.evaluation import plot_confusion, plot_curves, plot_reliability
        from seehear.evaluation.augmented import write_augmented_examples

        parts, records = p.state["parts"], p.state["records"]
        p.state["calibration"] = _calibrate(p.model, parts["valid"], cfg.train.precision)
        split = "test" if len(parts["test"][2]) else "valid"
        image, audio, y, ridx = parts[split]
        metrics: dict = {}
        if len(y):
            groups = [records[i].group for i in ridx]
            metrics[split], probs = pair_metrics(p.model, image, audio, y, groups, cfg.train.precision)
            metrics[split]["calibration"] = p.state["calibration"]
            plot_confusion(metrics[split], out / "confusion.png")
            plot_reliability(probs, y.numpy(), out / "reliability.png")
        metrics["leakage"] = [list(x) for x in p.state["leaks"][:50]]
        xt, _, yt, _ = parts["train"]
        write_augmented_examples(xt, yt, p.model.labels, cfg, "image", out)  # the image side, as trained on
        csv = out / "logs" / "metrics.csv"
        if csv.is_file():
            plot_curves(csv, out / "curves.png")
        return split, metrics


def _calibrate(model, valid, precision) -> dict:
    """Temperature scaling on the validation pairs (as classify does), fitted on the fused logits."""
    from seehear.trust.calibration import ece_nll, fit_temperature

    image, audio, y, _ = valid
    if not len(y):
        return {"skipped": "no validation split to fit a temperature on; the model keeps T = 1",
                "temperature": 1.0}
    z = fusion_logits(model, image, audio, precision=precision, raw=True)
    ece0, nll0 = ece_nll(z, y)
    t = fit_temperature(z, y)
    ece1, nll1 = ece_nll(z / t, y)
    if nll1 > nll0:
        t, ece1, nll1 = 1.0, ece0, nll0
    model.temperature.fill_(t)
    return {"temperature": t, "n": int(len(y)), "ece_before": ece0, "ece_after": ece1, "nll_before": nll0,
            "nll_after": nll1, "fitted_on": "valid"}


def pair_metrics(model, image, audio, y, groups, precision) -> tuple[dict, np.ndarray]:
    """classify's metrics of the fused prediction, plus the accuracy with each input alone (the other absent)."""
    from seehear.evaluation import compute_metrics

    out, fused = {}, None
    for view, (has_image, has_audio) in VIEWS.items():
        logits = fusion_logits(model, image if has_image else None, audio if has_audio else None,
                               precision=precision)
        probs = torch.softmax(logits, 1).numpy()
        if view == "fused":
            fused = probs
            out = compute_metrics(y.numpy(), probs, model.labels, groups if any(groups) else None)
        else:
            out[f"accuracy_{view}"] = float((probs.argmax(1) == y.numpy()).mean())
    return out, fused


# --- using a trained run ---------------------------------------------------------------------------------------

def evaluate(run, data, *, out=None, progress: bool = True) -> dict:
    """Metrics of a trained audio-image run on another pairs manifest (fused, image alone, audio alone)."""
    from seehear.evaluation import plot_confusion

    loaded = rf.load_run(run)
    source = load_pairs(data)
    unknown = sorted(set(source.labels) - set(loaded.labels))
    if unknown:
        raise DataError(f"{data} has labels the model never learned: {', '.join(unknown[:10])}; "
                        f"the model knows {', '.join(loaded.labels[:20])}")
    set_threads(loaded.cfg)
    d = decode_pairs(source.records, loaded.cfg, workers=loaded.cfg.data.workers, progress=progress)
    if not d.keep:
        raise DataError(f"none of the pairs in {data} could be decoded ({d.skipped[0][1] if d.skipped else ''})")
    idx = {l: i for i, l in enumerate(loaded.labels)}
    y = torch.tensor([idx[source.records[i].label] for i in d.keep])
    groups = [source.records[i].group for i in d.keep]
    m, _ = pair_metrics(loaded.model, d.image, d.audio, y, groups, loaded.cfg.train.precision)
    m["skipped"] = [list(s) for s in d.skipped]
    out = Path(out) if out else Path(run) / "eval" / Path(str(data)).resolve().stem
    write_json(out / "metrics.json", m)
    plot_confusion(m, out / "confusion.png")
    m["out"] = str(out)
    return m


def predict_pair(run, image=None, audio=None, *, top_k_labels: int = 3) -> list[dict]:
    """Top-k labels for one example: an image, a recording, or both (a missing one is marked absent)."""
    if image is None and audio is None:
        raise DataError("give --image FILE, --audio FILE or both")
    loaded = _fusion_run(run)
    set_threads(loaded.cfg)
    return [_predict(loaded, image, audio, top_k_labels)]


def predict_files(run, files: Sequence, *, top_k_labels: int = 3) -> list[dict]:
    """Each file alone (by its extension: an image or a recording), the other input marked absent; a file that
    cannot be read gets an `error` entry."""
    loaded = _fusion_run(run)
    set_threads(loaded.cfg)
    rows = []
    for f in files:
        ext = Path(str(f)).suffix.lower()
        if ext not in IMAGE_EXTS | AUDIO_EXTS:
            raise InputMismatchError(f"{f}: an audio-image run takes image or audio files (or --image/--audio)")
        try:
            rows.append(_predict(loaded, f if ext in IMAGE_EXTS else None, f if ext in AUDIO_EXTS else None,
                                 top_k_labels))
        except DataError as e:
            rows.append({"file": str(f), "error": str(e)})
    return rows


def _predict(loaded: rf.LoadedRun, image, audio, k: int) -> dict:
    xi = None if image is None else decode_one(image, loaded.cfg, "image")
    xa = None if audio is None else decode_one(audio, loaded.cfg, "audio")
    probs = torch.softmax(fusion_logits(loaded.model, xi, xa, precision=loaded.cfg.train.precision), 1)
    top = top_k(probs, loaded.labels, k)[0]
    return {"file": " + ".join(str(f) for f in (image, audio) if f is not None), "label": top[0]["label"],
            "probability": top[0]["probability"], "top": top,
            "inputs": [m for m, f in (("image", image), ("audio", audio)) if f is not None]}


def _fusion_run(run) -> rf.LoadedRun:
    loaded = rf.load_run(run)
    if loaded.modality != MODALITY:
        raise InputMismatchError(f"{run} recognises {loaded.modality}, not audio-image pairs: drop --image/--audio "
                                 f"and give it {loaded.modality} files")
    return loaded


TASK = Fusion()
__all__ = ["TASK", "asked", "is_fusion_run", "evaluate", "predict_pair", "predict_files", "pair_metrics"]

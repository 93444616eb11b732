"""Classification (task: classify): a label per image or clip. The default task, and the yardstick for the others.

Training decodes every example once into one uint8 / int16 tensor (data/cache.py) and fits a Recognizer (front end
+ backbone) with engine/trainer.fit. Evaluation and prediction stream their inputs in chunks of CHUNK files, so
memory stays bounded however many files they are given.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from seehear.atomic import write_json
from seehear.config import RunConfig
from seehear.data.cache import decode_all
from seehear.data.frames import length_summary
from seehear.data.groups import column_values, group_counts, group_names
from seehear.data.records import Source
from seehear.data.sources import list_files, load_source, require_trainable
from seehear.data.splits import find_leakage, splits_for
from seehear.engine import run_folder as rf
from seehear.engine import starts
from seehear.engine.imbalance import GROUP_SAMPLERS, log_prior, smoothing_conflict
from seehear.engine.trainer import fit, predict_probs, set_threads
from seehear.errors import ConfigError, DataError, InputMismatchError, SeehearError
from seehear.models.recognizer import build_recognizer, input_spec
from seehear.recipes import deep_merge, pick_recipe, resolve
from seehear.tasks.base import Prepared, Task

CHUNK = 512  # files decoded at a time by evaluate and predict


def auto_settings(source: Source) -> tuple[str, dict]:
    """Recipe and input settings read off a sample of the data (user settings still win over these)."""
    recs = source.records[:: max(1, len(source.records) // 64)][:64]
    if source.modality == "frames":
        return pick_recipe("frames"), {}
    if source.modality == "image":
        from PIL import Image

        sides = []
        for r in recs:
            if r.member is not None:
                sides.append(28)  # IDX digits
                continue
            try:
                with Image.open(r.path) as im:
                    sides.append(min(im.size))
            except Exception:  # unreadable files are reported by the decoder, not here
                continue
        return pick_recipe("image", statistics.median(sides) if sides else None), {}
    import soundfile as sf

    durs = []
    for r in recs:
        try:
            durs.append(sf.info(r.path).duration)
        except Exception:
            continue
    auto: dict[str, Any] = {}
    if durs:  # cover 90% of clips whole, in quarter seconds, within 1..8 s
        p90 = float(np.percentile(durs, 90))
        auto = {"audio": {"clip_seconds": float(min(8.0, max(1.0, np.ceil(p90 * 4) / 4)))}}
    return pick_recipe("audio"), auto


def _unlabelled(cfg: RunConfig, modality: str, progress: bool) -> tuple[torch.Tensor, list]:
    """Semi-supervised (`--unlabelled DIR`): its files decoded as the labelled ones, for engine/fixmatch.py."""
    from seehear.tasks.label import require_unlabelled

    more = list_files([str(require_unlabelled(cfg.data.unlabelled))])
    if more.modality != modality:
        raise InputMismatchError(f"--unlabelled {cfg.data.unlabelled} holds {more.modality} but the labelled data "
                                 f"is {modality}: give {modality} files")
    u = decode_all(more.records, cfg, modality, workers=cfg.data.workers, progress=progress)
    if not u.keep:
        raise DataError(f"none of the unlabelled files in {cfg.data.unlabelled} could be decoded")
    return u.x, u.skipped


def _sampling_groups(records, cfg: RunConfig) -> list | None:
    """Each record's group for train.sampler=group_balanced / group_class_balanced (column train.group_by, else
    the data's group: speaker); None for the other samplers."""
    t = cfg.train
    if t.sampler not in GROUP_SAMPLERS:
        if t.group_by:
            raise ConfigError(f"train.group_by={t.group_by} is only used by train.sampler=group_balanced or "
                              f"group_class_balanced (train.sampler is {t.sampler})")
        return None
    return column_values(records, t.group_by or "group", "train.group_by")


def _names_model(user: dict, overrides: Sequence[str]) -> bool:
    """Whether the user chose the model (--model, config or --set model.name): then no default start applies."""
    named = [a.split("=", 1)[1].strip() for a in overrides if a.split("=", 1)[0].strip() == "model.name"]
    name = named[-1] if named else (user.get("model") or {}).get("name")
    return name not in (None, "", "auto")


def _from_run(recipe: str, auto: dict, user: dict, overrides: Sequence[str], source: Source, run) -> RunConfig:
    """Settings for a run that starts from run folder RUN: the source's architecture and input form, unless the
    user set them (transfer)."""
    from seehear.engine.transfer import check_modality, only_unset, source_defaults, source_meta

    src_meta = source_meta(run)
    check_modality(src_meta, source.modality, run)
    src = source_defaults(src_meta)
    merged = {**src, "model": {**src["model"], "init_from": str(run)}}
    cfg = resolve(recipe, deep_merge(deep_merge(auto, only_unset(merged, user, overrides)), user), list(overrides))
    cfg.modality = source.modality
    return cfg


class Classify(Task):
    name = "classify"

    def load(self, data, label_pattern, modality="auto"):
        source = load_source(data, label_pattern=label_pattern, modality=modality)
        require_trainable(source)
        return source

    def resolve(self, source, user, overrides):
        recipe, auto = auto_settings(source)
        cfg = resolve(recipe, deep_merge(auto, user), list(overrides))
        cfg.modality = source.modality
        start = starts.plan(recipe, cfg, _names_model(user, overrides))
        if start["kind"] == "default":  # the recipe's default start, as --from would, if it fits: else scratch
            try:
                trial = _from_run(recipe, auto, user, overrides, source, start["source"])
                starts.check_fits(trial, source.labels, source.modality, start["source"])
                cfg, start = trial, {**start, "kind": "run"}
            except (SeehearError, KeyError, TypeError, ValueError, OSError) as e:  # a damaged folder included
                start = starts.unfit(recipe, (str(e).splitlines() or [type(e).__name__])[0])
        elif cfg.model.init_from:
            cfg = _from_run(recipe, auto, user, overrides, source, cfg.model.init_from)
        cfg.planned_start = start  # resolve knows why (the user's settings); prepare records it (not a setting: unsaved)
        if cfg.synthetic.run:  # a GAN run whose images fit, checked before anything is decoded
            from seehear.engine.synthetic import check_fits

            check_fits(cfg.synthetic, cfg, source.modality)
            if cfg.train.sampler in GROUP_SAMPLERS:
                raise ConfigError(f"synthetic.run and train.sampler={cfg.train.sampler} do not combine: generated "
                                  f"images belong to no group")
        return cfg, recipe

    def prepare(self, source, cfg, out, resume, progress):
        records, labels = source.records, source.labels
        group_values = _sampling_groups(records, cfg)  # a bad train.group_by fails before anything is decoded
        splits = splits_for(records, cfg.data, cfg.train.seed, out / "split.json", resume)
        leaks = find_leakage(records, splits)
        if source.modality == "audio" and cfg.augment.noise_dir:  # a bad folder is an error now, not mid-training
            from seehear.features.audio_augment import load_noise_dir

            load_noise_dir(cfg.augment.noise_dir, cfg.audio.sample_rate)
        decoded = decode_all(records, cfg, source.modality, workers=cfg.data.workers, progress=progress)
        lab_idx = {l: i for i, l in enumerate(labels)}
        row = {rec_i: row_i for row_i, rec_i in enumerate(decoded.keep)}
        y_all = torch.tensor([lab_idx[r.label] for r in records], dtype=torch.long)

        def part(name):
            ridx = [i for i in splits.get(name, []) if i in row]
            return decoded.x[[row[i] for i in ridx]], y_all[ridx], ridx

        parts = {name: part(name) for name in ("train", "valid", "test")}
        if len(parts["train"][1]) == 0:
            raise DataError(f"no training examples could be decoded from {source.root} ({len(decoded.skipped)} "
                            f"files skipped; see `seehear data check {source.root}`)")
        norm = None
        if source.modality in ("image", "frames"):
            from seehear.features.image import channel_stats

            mean, std = channel_stats(parts["train"][0].flatten(0, -4))  # frames: every frame an image
            norm = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
        net = build_recognizer(cfg, labels, source.modality, norm)
        per_class = torch.bincount(parts["train"][1], minlength=len(labels))  # real examples (meta.json)
        synthetic = None
        if cfg.synthetic.run:  # rare classes topped up with a GAN's images: the training tensor only
            from seehear.engine.synthetic import top_up

            xs, ys, synthetic = top_up(parts["train"][0], parts["train"][1], labels, cfg.synthetic, cfg.train.seed)
            parts["train"] = (xs, ys, parts["train"][2])
        train_groups = None
        if group_values is not None:
            names = group_names([group_values[i] for i in parts["train"][2]])
            index = {g: k for k, g in enumerate(sorted(set(names)))}
            train_groups = torch.tensor([index[g] for g in names], dtype=torch.long)
        transfer = None
        start = getattr(cfg, "planned_start", None) or starts.resumed(out, cfg)
        if cfg.model.init_from:
            from seehear.engine.transfer import init_from_run, pretrain_overlap

            transfer = init_from_run(net, cfg.model.init_from, cfg, source.modality)
            start = {**start, "sha256": transfer["sha256"]}
            note = pretrain_overlap(cfg.model.init_from, [records[i].key for i in splits.get("test") or splits.get("valid", [])])
            if note:
                print(f"warning: {note}", file=sys.stderr)
                transfer["warning"] = note
        unlabelled, u_skipped = _unlabelled(cfg, source.modality, progress) if cfg.data.unlabelled else (None, [])
        meta = {"modality": source.modality, "labels": labels, "input": input_spec(cfg, source.modality),
                "norm_stats": norm, "data": {"counts": {k: len(v) for k, v in splits.items()},
                                             "leakage": len(leaks),
                                             "train_per_class": dict(zip(labels, per_class.tolist()))}}
        if decoded.lengths is not None:  # image sequences: how many were sampled down or padded to frames.count
            meta["data"]["frames"] = length_summary(decoded.lengths, cfg.frames.count)
        if train_groups is not None:
            meta["data"]["train_per_group"] = {"column": cfg.train.group_by or "group", "counts": group_counts(names)}
        t = cfg.train
        tau = t.posthoc_tau or (t.logit_tau if t.loss == "logit_adjusted" else 0.0)
        seen = torch.bincount(parts["train"][1], minlength=len(labels))  # the prior trained on, generated too
        conflict = smoothing_conflict(seen, t.label_smoothing, tau)
        if conflict:  # said, not changed: the user (or the recipe) chose both
            print(f"warning: {conflict}", file=sys.stderr)
            meta["imbalance_warning"] = conflict
        if t.posthoc_tau:  # post-hoc logit adjustment by the training prior (Menon et al. 2021)
            shift = (t.posthoc_tau * log_prior(seen)).tolist()
            net.set_logit_shift(shift)
            meta["logit_shift"] = shift
        if transfer:
            meta["transfer"] = transfer
        if start["kind"] == "weights":
            from seehear.engine.transfer import sha256

            start = {**start, "sha256": sha256(Path(start["source"]))}
        meta["start"] = start
        if synthetic:
            meta["synthetic"] = synthetic
        if unlabelled is not None:
            meta["data"]["unlabelled"] = {"folder": str(Path(cfg.data.unlabelled).resolve()), "used": len(unlabelled),
                                          "skipped": len(u_skipped)}
        return Prepared(net, meta, decoded.skipped + u_skipped,
                        {"parts": parts, "records": records, "leaks": leaks, "unlabelled": unlabelled,
                         "train_groups": train_groups})

    def fit(self, p, cfg, out, resume, progress):
        (xtr, ytr, _), (xva, yva, _) = p.state["parts"]["train"], p.state["parts"]["valid"]
        return fit(p.model, cfg, (xtr, ytr), (xva, yva) if len(yva) else None, out, resume=resume,
                   progress=progress, unlabelled=p.state.get("unlabelled"), groups=p.state.get("train_groups"))

    def measure(self, p, cfg, out):
        from seehear.evaluation import compute_metrics, plot_confusion, plot_curves, plot_reliability

        from seehear.trust.calibration import calibrate

        parts, records = p.state["parts"], p.state["records"]
        # Temperature scaling on the validation split (Guo et al. 2017), before anything is measured: every
        # probability seehear reports from now on, ONNX included, is calibrated. No validation split: skipped.
        xva, yva, _ = parts["valid"]
        cal = calibrate(p.model, xva if len(yva) else None, yva if len(yva) else None, precision=cfg.train.precision)
        p.state["calibration"] = cal if "skipped" in cal else {**cal, "fitted_on": "valid"}
        split = "test" if len(parts["test"][1]) else "valid"
        xe, ye, ie = parts[split]
        metrics: dict = {}
        if len(ye):
            probs = predict_probs(p.model, xe, precision=cfg.train.precision).numpy()
            groups = [records[i].group for i in ie] if any(records[i].group for i in ie) else None
            metrics[split] = compute_metrics(ye.numpy(), probs, p.model.labels, groups)
            metrics[split]["calibration"] = p.state["calibration"]
            plot_confusion(metrics[split], out / "confusion.png")
            plot_reliability(probs, ye.numpy(), out / "reliability.png")
        metrics["leakage"] = [list(x) for x in p.state["leaks"][:50]]
        from seehear.evaluation.augmented import write_augmented_examples

        xt, yt, _ = parts["train"]  # what the model was trained on, for the report
        write_augmented_examples(xt, yt, p.model.labels, cfg, p.model.modality, out)
        csv = out / "logs" / "metrics.csv"
        if csv.is_file():
            plot_curves(csv, out / "curves.png")
        return split, metrics

    def finished(self, p, metrics):
        return {"calibration": p.state.get("calibration")}


# --- using a trained run ---------------------------------------------------------------------------------------------

def _chunks(loaded: rf.LoadedRun, source: Source, progress: bool):
    """(records' indices, DecodedSet) for CHUNK files at a time: memory bounded by the chunk, not the input."""
    if source.modality != loaded.modality:
        raise InputMismatchError(f"{loaded.run_dir} recognises {loaded.modality}, but the input is "
                                 f"{source.modality}: give it {loaded.modality} files")
    for start in range(0, len(source.records), CHUNK):
        recs = source.records[start:start + CHUNK]
        d = decode_all(recs, loaded.cfg, loaded.modality, workers=loaded.cfg.data.workers,
                       progress=progress and len(source.records) > CHUNK)
        yield [start + i for i in d.keep], d


def _probs(loaded: rf.LoadedRun, d) -> torch.Tensor:
    if not d.keep:
        return torch.zeros(0, len(loaded.labels))
    return predict_probs(loaded.model, d.x, precision=loaded.cfg.train.precision)


def evaluate(run, data, *, label_pattern: str | None = None, out: str | Path | None = None,
             progress: bool = True) -> dict:
    """Metrics of a trained run on other labelled data; writes metrics.json and confusion.png to OUT."""
    from seehear.evaluation import compute_metrics, plot_confusion

    loaded = rf.load_run(run)
    source = load_source(data, label_pattern=label_pattern or loaded.cfg.data.label_pattern,
                         modality="frames" if loaded.modality == "frames" else "auto")
    unknown = sorted(set(source.labels) - set(loaded.labels))
    if unknown:
        raise DataError(f"{data} has labels the model never learned: {', '.join(unknown[:10])}; "
                        f"the model knows {', '.join(loaded.labels[:20])}")
    set_threads(loaded.cfg)
    idx = {l: i for i, l in enumerate(loaded.labels)}
    kept, probs, skipped = [], [], []
    for keep, d in _chunks(loaded, source, progress):
        kept += keep
        probs.append(_probs(loaded, d).numpy())
        skipped += d.skipped
    y = np.array([idx[source.records[i].label] for i in kept])
    groups = [source.records[i].group for i in kept]
    m = compute_metrics(y, np.concatenate(probs) if probs else np.zeros((0, len(loaded.labels))), loaded.labels,
                        groups if any(groups) else None)
    m["skipped"] = [list(s) for s in skipped]
    out = Path(out) if out else Path(run) / "eval" / Path(str(data)).resolve().name
    write_json(out / "metrics.json", m)
    plot_confusion(m, out / "confusion.png")
    m["out"] = str(out)
    return m


def top_k(probs: torch.Tensor, labels: Sequence[str], k: int) -> list[list[dict]]:
    """The k most likely labels of each row of probs, best first: [{label, probability}]."""
    k = max(1, min(k, len(labels)))
    if not len(probs):
        return []
    top = torch.topk(probs, k, dim=1)
    return [[{"label": labels[int(c)], "probability": round(float(p), 4)} for p, c in zip(vals, ids)]
            for vals, ids in zip(top.values, top.indices)]


def predict(run, inputs, *, top_k_labels: int = 3, progress: bool = False) -> list[dict]:
    """Top-k labels with probabilities for files or folders of files; unreadable files get an `error` entry."""
    loaded = rf.load_run(run)
    paths = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(p) for p in inputs]
    source = list_files(paths, "frames" if loaded.modality == "frames" else "auto")  # frames: a folder is a clip
    set_threads(loaded.cfg)
    from seehear.tasks.fewshot import load_prototypes, prototype_probs

    protos = load_prototypes(loaded.run_dir)  # few-shot classes enrolled: nearest prototype (tasks/fewshot.py)
    labels = protos["labels"] if protos else loaded.labels
    rows: list[dict] = []
    for keep, d in _chunks(loaded, source, progress):
        probs = prototype_probs(loaded.model, d.x, protos) if protos and d.keep else _probs(loaded, d)
        for i, top in zip(keep, top_k(probs, labels, top_k_labels)):
            rows.append({"file": source.records[i].key, "label": top[0]["label"],
                         "probability": top[0]["probability"], "top": top})
        rows += [{"file": key, "error": reason} for key, reason in d.skipped]
    return rows


TASK = Classify()
__all__ = ["TASK", "evaluate", "predict", "top_k", "auto_settings", "RunConfig"]

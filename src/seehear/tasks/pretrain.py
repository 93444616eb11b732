"""Self-supervised pretraining (task: pretrain; `seehear pretrain DIR --out runs/ssl`) over the shared run lifecycle,
so the result is an ordinary run folder that labelled runs start from with `seehear train DATA --from runs/ssl`.

Images: SimCLR (engine/simclr.py), or BYOL or DINO (engine/ema_ssl.py: an EMA teacher, no negatives; the teacher
and the extra heads are in the checkpoint, for resume, not in the run's model). The run's "classes" are the
PROJECTION_DIM outputs of the backbone's last Linear (SimCLR's head adds layers after it in the checkpoint only); a
labelled run started from it gets a new head.
If the folder happens to have class subfolders, their labels are used only by the kNN monitor (metrics.json
valid.knn_accuracy), never for training.

Audio: BEST-RQ masked prediction (engine/bestrq.py; pretrain.method masked, or contrastive) of a transcription
model's encoder (models/asr), on whole recordings of any length. 10% of the files are held out to measure the
masked-prediction accuracy (metrics.json valid.masked_accuracy, beside chance = 1 / codebook size). The run's model
is a Transcriber whose output layer scores the codebook; `train --task transcribe --from` keeps everything else.
"""
from __future__ import annotations

import hashlib

import torch

from seehear.data.cache import decode_all, decode_waves
from seehear.data.sources import load_source
from seehear.data.splits import splits_for
from seehear.engine.base_module import batch_size_for
from seehear.engine.bestrq import METHODS as AUDIO_METHODS
from seehear.engine.bestrq import QUANTIZER_FILE, BestRQModule, RandomQuantizer, masked_accuracy
from seehear.engine.ctc import LengthBatches
from seehear.engine.ema_ssl import BYOLModule, DINOModule
from seehear.engine.loaders import Batches
from seehear.engine.simclr import SimCLRModule, knn_accuracy, representation
from seehear.engine.trainer import fit_module
from seehear.engine.transfer import FEATURE_KEYS, sha256
from seehear.errors import ConfigError, DataError
from seehear.features.audio import feature_bands
from seehear.models.recognizer import build_recognizer, input_spec
from seehear.models.registry import get_spec, list_models
from seehear.models.transcriber import build_transcriber
from seehear.recipes import resolve
from seehear.tasks.base import Prepared, Task

PROJECTION_DIM = 64
MIN_IMAGES = 16  # fewer make no contrastive batch worth the name
MIN_RECORDINGS = 20  # 10% held out must still be a couple of recordings
IMAGE_METHODS = ("simclr", "byol", "dino")
IMAGE_MODULES = {"simclr": SimCLRModule, "byol": BYOLModule, "dino": DINOModule}
METHODS = IMAGE_METHODS + AUDIO_METHODS


class Pretrain(Task):
    name = "pretrain"

    def load(self, data, label_pattern, modality="auto"):
        source = load_source(data, label_pattern=label_pattern)
        if source.modality == "frames":
            raise DataError(f"{data} holds image sequences: self-supervised pretraining is for images and audio")
        least, what = (MIN_IMAGES, "image") if source.modality == "image" else (MIN_RECORDINGS, "recording")
        if len(source.records) < least:
            raise DataError(f"{data} has {len(source.records)} {what}(s); pretraining needs at least {least} "
                            f"(hundreds or more to be useful)")
        return source

    def resolve(self, source, user, overrides):
        recipe = "image-ssl" if source.modality == "image" else "audio-ssl"
        cfg = resolve(recipe, user, list(overrides))
        cfg.modality = source.modality
        allowed = IMAGE_METHODS if source.modality == "image" else AUDIO_METHODS
        if cfg.pretrain.method == "auto":
            cfg.pretrain.method = allowed[0]
        if cfg.pretrain.method not in allowed:
            raise ConfigError(f"pretrain method {cfg.pretrain.method!r} is for "
                              f"{'audio' if source.modality == 'image' else 'images'}; on {source.modality} use "
                              f"{', '.join(allowed[:-1])} or {allowed[-1]}")
        if source.modality == "image":
            p = cfg.pretrain
            if not (0.0 <= p.ema_momentum <= 1.0 and 0.0 <= p.center_momentum < 1.0) or p.prototypes < 2 \
                    or p.predictor_hidden < 1 or min(p.teacher_temperature, p.student_temperature) <= 0:
                raise ConfigError(f"pretrain settings out of range: ema_momentum {p.ema_momentum} must be in [0, 1], "
                                  f"center_momentum {p.center_momentum} in [0, 1), prototypes >= 2, "
                                  f"predictor_hidden >= 1, temperatures > 0")
        if source.modality == "audio":
            if get_spec(cfg.model.name).task != "transcribe":
                names = ", ".join(s.name for s in list_models("audio", "transcribe"))
                raise ConfigError(f"speech pretraining trains the encoder of a transcription model; model "
                                  f"{cfg.model.name} is not one (use one of {names})")
            p = cfg.pretrain
            if not (0.0 < p.mask_prob < 1.0) or p.mask_frames < 1 or p.codebook_size < 2 or p.codebook_dim < 1:
                raise ConfigError(f"pretrain settings out of range: mask_prob {p.mask_prob} must be in (0, 1), "
                                  f"mask_frames >= 1, codebook_size >= 2, codebook_dim >= 1")
        return cfg, recipe

    def prepare(self, source, cfg, out, resume, progress):
        if source.modality == "audio":
            return _prepare_audio(source, cfg, out, resume, progress)
        from seehear.features.image import channel_stats

        decoded = decode_all(source.records, cfg, "image", workers=cfg.data.workers, progress=progress)
        if len(decoded.keep) < MIN_IMAGES:
            raise DataError(f"only {len(decoded.keep)} image(s) of {source.root} could be decoded; pretraining "
                            f"needs at least {MIN_IMAGES}")
        x = decoded.x
        mean, std = channel_stats(x)
        norm = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
        labels = [f"z{i}" for i in range(PROJECTION_DIM)]
        net = build_recognizer(cfg, labels, "image", norm)
        monitor = _monitor(source, decoded, cfg.train.seed)
        meta = {"modality": "image", "labels": labels, "input": input_spec(cfg, "image"), "norm_stats": norm,
                "pretrain": {"method": cfg.pretrain.method, "projection_dim": PROJECTION_DIM,
                             "knn_monitor": monitor is not None, **_method_settings(cfg.pretrain)},
                "data": {"counts": {"train": len(decoded.keep)}}}
        return Prepared(net, meta, decoded.skipped, {"x": x, "monitor": monitor})

    def fit(self, p, cfg, out, resume, progress):
        if cfg.modality == "audio":
            return _fit_audio(p, cfg, out, resume, progress)
        x = p.state["x"]
        bs = batch_size_for(len(x), cfg.train.batch_size, floor=16)
        loader = Batches(x, torch.zeros(len(x), dtype=torch.long), bs, shuffle=True, seed=cfg.train.seed,
                         drop_last=True)
        p.model.to(memory_format=torch.channels_last)  # before a teacher copies it
        module = IMAGE_MODULES[cfg.pretrain.method](p.model, cfg, len(loader), monitor=p.state["monitor"])
        info = fit_module(module, cfg, loader, None, out, resume=resume, progress=progress)
        p.model.eval()
        return {**info, "batch_size": bs, "knn_by_epoch": module.knn}

    def measure(self, p, cfg, out):
        if cfg.modality == "audio":
            m = masked_accuracy(p.model, p.state["quantizer"], _held_out(p, cfg), cfg.pretrain)
            return "valid", {"valid": {**m, "files": len(p.state["held"])}}
        mon = p.state["monitor"]
        if mon is None:
            return "valid", {}
        xtr, ytr, xva, yva = mon
        acc = knn_accuracy(representation(p.model, xtr), ytr, representation(p.model, xva), yva)
        return "valid", {"valid": {"knn_accuracy": round(acc, 4), "n": len(yva), "k": 5}}


def _method_settings(p) -> dict:
    """The settings of the image method that shaped the run, for meta.json."""
    if p.method == "byol":
        return {"ema_momentum": p.ema_momentum, "predictor_hidden": p.predictor_hidden}
    if p.method == "dino":
        return {"ema_momentum": p.ema_momentum, "prototypes": p.prototypes, "center_momentum": p.center_momentum,
                "teacher_temperature": p.teacher_temperature, "student_temperature": p.student_temperature}
    return {}


def _monitor(source, decoded, seed: int):
    """(x_train, y_train, x_valid, y_valid) for the kNN monitor from the folder's own labels, if it has any."""
    labels = sorted({source.records[i].label for i in decoded.keep if source.records[i].label is not None})
    if len(labels) < 2:
        return None
    rows = [j for j, i in enumerate(decoded.keep) if source.records[i].label is not None]
    y = torch.tensor([labels.index(source.records[decoded.keep[j]].label) for j in rows])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    cut = max(1, len(rows) // 5)
    va, tr = order[:cut], order[cut:]
    x = decoded.x[rows]
    return x[tr], y[tr], x[va], y[va]


# --- audio: BEST-RQ ------------------------------------------------------------------------------------------

def _prepare_audio(source, cfg, out, resume, progress):
    records = source.records  # labels, if any, are never used
    splits = splits_for(records, cfg.data, cfg.train.seed, out / "split.json", resume)
    waves = decode_waves(records, cfg.audio.sample_rate, max_seconds=cfg.transcribe.max_seconds,
                         workers=cfg.data.workers, progress=progress)
    row = {rec: i for i, rec in enumerate(waves.keep)}
    train = [row[i] for i in splits.get("train", []) if i in row]
    held = [row[i] for s in ("valid", "test") for i in splits.get(s, []) if i in row]
    if len(train) + len(held) < MIN_RECORDINGS or not held:
        raise DataError(f"only {len(waves.keep)} recording(s) of {source.root} could be decoded "
                        f"({len(waves.skipped)} skipped); pretraining needs at least {MIN_RECORDINGS}")
    p = cfg.pretrain
    width = p.codebook_size if p.method == "masked" else p.codebook_dim  # the output layer: codes, or a vector
    net = build_transcriber(cfg, [f"c{i}" for i in range(width)])
    factor = int(getattr(net.acoustic, "frame_factor", 4))
    quantizer = RandomQuantizer(feature_bands(cfg.audio) * factor, p.codebook_size, p.codebook_dim, cfg.train.seed)
    quantizer.save(out / QUANTIZER_FILE)
    used = sorted(records[waves.keep[i]].key for i in train + held)
    a = cfg.audio
    meta = {"modality": "audio", "labels": [],
            "input": {"modality": "audio", **{k: getattr(a, k) for k in FEATURE_KEYS}, "frame_factor": factor},
            "pretrain": {"method": p.method, "codebook_size": p.codebook_size, "codebook_dim": p.codebook_dim,
                         "mask_prob": p.mask_prob, "mask_frames": p.mask_frames, "noise_std": p.noise_std,
                         "seed": cfg.train.seed, "quantizer": QUANTIZER_FILE,
                         "quantizer_sha256": sha256(out / QUANTIZER_FILE)},
            "data": {"counts": {"train": len(train), "valid": len(held)},
                     "hours": round(float(waves.lengths[train].sum()) / a.sample_rate / 3600, 3),
                     "files_sha256": hashlib.sha256("\n".join(used).encode()).hexdigest()}}
    return Prepared(net, meta, [tuple(s) for s in waves.skipped],
                    {"waves": waves, "train": train, "held": held, "quantizer": quantizer})


def _held_out(p, cfg):
    bs = batch_size_for(len(p.state["train"]), cfg.train.batch_size, floor=4)
    return LengthBatches(p.state["waves"], p.state["held"], [[]] * len(p.state["waves"]), bs, shuffle=False)


def _fit_audio(p, cfg, out, resume, progress):
    waves = p.state["waves"]
    bs = batch_size_for(len(p.state["train"]), cfg.train.batch_size, floor=4)
    loader = LengthBatches(waves, p.state["train"], [[]] * len(waves), bs, shuffle=True, seed=cfg.train.seed)
    module = BestRQModule(p.model, cfg, len(loader), p.state["quantizer"])
    info = fit_module(module, cfg, loader, _held_out(p, cfg), out, resume=resume, progress=progress,
                      monitor="val_acc", monitor_mode="max")
    return {**info, "batch_size": bs, "masked_accuracy_by_epoch": module.val_acc}


def pretrain(data, out, *, method: str | None = None, model=None, epochs=None, time_budget=None, overrides=(),
             overwrite=False, resume=False, progress=True):
    """Self-supervised pretraining on a folder of unlabelled images (SimCLR, BYOL or DINO) or recordings (BEST-RQ masked
    prediction, or contrastive) into run folder OUT. method None: the modality's default. resume: continue the run
    in OUT from its last checkpoint with its own settings (BYOL/DINO: with the same teacher)."""
    from seehear.tasks.base import named_settings, train_task

    if method is not None and method not in METHODS:
        raise ConfigError(f"pretrain method {method!r} is not built; use one of {', '.join(METHODS)} "
                          f"(simclr, byol or dino for images; masked or contrastive for audio)")
    extra = [f"pretrain.method={method}"] if method else []
    return train_task(TASK, data, out, named=named_settings(model=model, epochs=epochs, time_budget=time_budget),
                      overrides=extra + list(overrides), overwrite=overwrite, resume=resume, progress=progress)


TASK = Pretrain()

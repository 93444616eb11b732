"""Default recipes per modality: every hyperparameter that the defaults change, in one visible place.

How a run's settings are resolved, later winning:
    RunConfig() defaults  ←  RECIPES[recipe]  ←  the user's --config YAML  ←  CLI flags and --set key=value
"""
from __future__ import annotations

import copy

from seehear.config import RunConfig
from seehear.errors import ConfigError

# Shared by the offline and the streaming speech-to-text recipes (see "asr" below for why these values).
ASR_AUGMENT = {"time_shift": 0.0, "speed": [0.9, 1.1], "noise_snr_db": [15.0, 40.0], "noise_prob": 0.0,
               "freq_masks": 2, "freq_width": 15, "time_masks": 2, "time_width": 25}
# batches stay fixed (train.batches): redrawing them every epoch gave speechocean762 no lower test CER (75.3% vs
# 74.9%, 40 min, one seed each: bench/results/speechocean762-asr-redrawn.json beside speechocean762-asr.json)
ASR_TRAIN = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-3, "batch_size": 8, "epochs": 60,
             "schedule": "onecycle", "label_smoothing": 0.0, "grad_clip": 5.0}

RECIPES: dict[str, dict] = {
    # Small images (digits, CIFAR-sized), the airbench recipe adapted to CPUs (bench/cifar10.py): fastnet (frozen
    # whitening layer set from the data, identity-initialised convs, BN scales frozen, logits x 1/9), flips on
    # alternate epochs and translations, label smoothing 0.2, one-cycle Nesterov SGD at airbench94's per-example
    # learning rate and weight decay (11.5 and 0.0153 per 1,024 examples, momentum 0.85, norm/bias lr x64, here
    # per batch of 256), lookahead averaging, flip test-time augmentation; validation capped at 1,000 images so
    # large sets train on the rest. On CIFAR-10 in 8 min these optimiser settings gave 87.9% where lr 0.05 /
    # wd 5e-4 / momentum 0.9 with trainable BN scales and unscaled logits gave 85.4% (mean of 3 seeds). Tried and
    # not kept (bench/results/probes): Muon for the filters, batch 1024 with airbench94's lr curve, widths
    # 64/128/256 (+0.35 points, twice the latency); image.tta=flip-translate adds 0.1-0.3 points at 3x inference.
    "image-small": {
        "data": {"valid_max": 1000},
        "model": {"name": "fastnet"},  # with its registry defaults (airbench's logit scale, frozen BN scales)
        "image": {"size": 32, "resize": "stretch", "tta": "flip"},
        "augment": {"flip": True, "alternate_flip": True, "crop_pad": 2},
        "train": {"optimizer": "sgd", "lr": 0.375, "momentum": 0.85, "nesterov": True, "weight_decay": 1.33e-3,
                  "norm_lr_scale": 64.0, "decay_norms": True, "batch_size": 256, "epochs": 20,
                  "schedule": "onecycle", "label_smoothing": 0.2, "lookahead": True, "grad_clip": None},
    },
    # Photos: larger input, same fast CNN family; a local pretrained backbone is better where the user has one.
    "image-photo": {
        "model": {"name": "fastnet", "kwargs": {"logit_scale": 1.0, "bn_weight": True}},  # for lr 0.05
        "image": {"size": 64, "resize": "crop"},
        "augment": {"flip": True, "crop_pad": 4},
        "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 64, "epochs": 30, "label_smoothing": 0.1},
    },
    # Spoken words / commands / short clips. Unseen voices are the hard part (tuned on FSDD with each speaker held
    # out, bench/fsdd.py): 13 MFCCs with per-utterance mean/variance normalisation (CMVN) keep the spectral envelope
    # and drop pitch harmonics and fine spectral detail that identify the voice; 20 Hz-4 kHz (telephone band) holds
    # the words and suits 8 kHz recordings; speed (tempo+pitch) and noise perturbation; SpecAugment with narrow
    # masks on the cepstra (up to 2 of 13 coefficients); TC-ResNet8 because its 1D convs are cheap enough on a CPU
    # for the many epochs that unseen voices need.
    "audio-words": {
        "model": {"name": "tcresnet8"},
        "audio": {"sample_rate": 16000, "clip_seconds": 1.0, "crop": "energy", "features": "mfcc", "n_mels": 40,
                  "n_mfcc": 13, "f_max": 4000.0, "normalize": "utterance"},
        "augment": {"time_shift": 0.1, "speed": [0.85, 1.15], "noise_snr_db": [10.0, 40.0], "noise_prob": 0.5,
                    "freq_masks": 2, "freq_width": 2, "time_masks": 2, "time_width": 10},
        "train": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-3, "batch_size": 64, "epochs": 45,
                  "schedule": "onecycle", "label_smoothing": 0.1},
    },
    # Emotion in speech (not auto-picked; `--config` a YAML that names these settings, or bench/emodb.py). Pitch and
    # prosody carry emotion, so: full-band log-mel, per-clip 'global' normalisation (keeps each band's level and
    # movement), no speed perturbation (it shifts pitch), whole 2 s clips. A reasoned default, not yet tuned.
    "audio-emotion": {
        "model": {"name": "tcresnet8"},
        "audio": {"sample_rate": 16000, "clip_seconds": 2.0, "crop": "center", "features": "logmel", "n_mels": 40,
                  "normalize": "global"},
        "augment": {"time_shift": 0.1, "speed": None, "noise_snr_db": [15.0, 40.0], "noise_prob": 0.5,
                    "freq_masks": 2, "freq_width": 4, "time_masks": 2, "time_width": 20},
        "train": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-3, "batch_size": 32, "epochs": 60,
                  "schedule": "onecycle", "label_smoothing": 0.1},
    },
    # Speech to text (task: transcribe): a Conformer trained with CTC on characters over 80 log-mel bands with
    # per-utterance normalisation, SpecAugment, speed perturbation, AdamW with a one-cycle schedule; beam search
    # with a word 3-gram from the training transcripts. On a CPU budget the number of optimiser steps is what
    # gets CTC past its all-blank plateau: small batches (8 recordings of median length) at lr 1e-3 beat 32 at
    # 2e-3 or 5e-4 on speechocean762 at equal time (val loss 2.74 vs 2.83 after ~5 min on one core).
    "asr": {
        "task": "transcribe",
        "data": {"valid_fraction": 0.04},  # every utterance counts: a small validation set, for early signs only
        "model": {"name": "conformer_ctc"},
        "audio": {"sample_rate": 16000, "features": "logmel", "n_mels": 80, "normalize": "utterance",
                  "f_max": 8000.0},
        "augment": ASR_AUGMENT,
        "train": ASR_TRAIN,
    },
    # Streaming speech to text: a left-to-right LSTM with 120 ms look-ahead; features without utterance statistics
    # (the model normalises each stacked frame itself), so they can be computed as audio arrives.
    "asr-stream": {
        "task": "transcribe",
        "data": {"valid_fraction": 0.04},
        "model": {"name": "lstm_ctc_stream"},
        "audio": {"sample_rate": 16000, "features": "logmel", "n_mels": 80, "normalize": "none", "f_max": 8000.0},
        "augment": ASR_AUGMENT,
        "train": ASR_TRAIN,
    },
    # Speaker embeddings (task: speakers): an ECAPA-style TDNN over 80 log-mel bands trained as speaker
    # classification with AAM-softmax on 3 s crops; cosine scoring of the embeddings.
    "speakers": {
        "task": "speakers",
        "model": {"name": "ecapa_small"},
        "audio": {"sample_rate": 16000, "clip_seconds": 3.0, "crop": "start", "features": "logmel", "n_mels": 80,
                  "normalize": "utterance"},
        "augment": {"time_shift": 0.0, "speed": None, "noise_snr_db": [5.0, 30.0], "noise_prob": 0.5,
                    "freq_masks": 1, "freq_width": 8, "time_masks": 1, "time_width": 20},
        "train": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 2e-4, "batch_size": 64, "epochs": 40,
                  "schedule": "onecycle", "label_smoothing": 0.0},
    },
    # Synthetic images (task: synthesize): a class-conditional SNGAN-style GAN with a projection discriminator,
    # hinge loss, DiffAugment and an EMA generator (models/vision/gan.py), sized for a CPU: width 32, 32 pixels.
    # Adam at 2e-4 with betas (0, 0.9), 4 discriminator steps per generator step as BigGAN's and DiffAugment's
    # CIFAR-10 runs (with 1, each class collapsed to one image: engine/gan.py); manual optimisation, so no clipping
    # or Lightning EMA.
    "gan-small": {
        "task": "synthesize",
        "model": {"name": "gan", "kwargs": {"z_dim": 64, "width": 32, "ema": 0.999, "d_steps": 4}},
        "image": {"size": 32, "channels": 3},
        "train": {"lr": 2e-4, "batch_size": 64, "epochs": 200, "grad_clip": None, "ema": None, "lookahead": False,
                  "precision": "32", "label_smoothing": 0.0},
    },
    # Image sequences (modality frames: frame folders, animated GIF/WebP): a small CNN on every frame, an LSTM over
    # time (models/vision/frames.py), 8 frames per clip. Flips off: mirroring a clip turns a left-moving thing into a
    # right-moving one, so it would change labels that are about direction. Translations are drawn once per clip
    # (features/augment.augment_sequences). AdamW one-cycle: the LSTM trains poorly at SGD's image learning rates.
    "frames": {
        "model": {"name": "cnn_lstm_frames"},
        "image": {"size": 32, "resize": "stretch", "tta": "none"},
        "frames": {"count": 8},
        "augment": {"flip": False, "alternate_flip": False, "crop_pad": 2},
        "train": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 5e-4, "batch_size": 32, "epochs": 30,
                  "schedule": "onecycle", "label_smoothing": 0.1},
    },
    # Audio-image pairs (modality audio-image, models/fusion.py): a small CNN on the image, TC-ResNet8 on 40 log-mel
    # bands; AdamW at the audio recipe's settings (both branches train from scratch together). No flips: digits
    # and text are not mirror-symmetric. fusion.* (mode, modality dropout, branch models) in config.py.
    "audio-image": {
        "modality": "audio-image",
        "model": {"name": "fusion"},
        "image": {"size": 32, "resize": "stretch", "tta": "none"},
        "audio": {"sample_rate": 16000, "clip_seconds": 1.0, "crop": "energy", "features": "logmel", "n_mels": 40,
                  "f_max": 8000.0, "normalize": "utterance"},
        "augment": {"flip": False, "crop_pad": 2, "time_shift": 0.1, "speed": [0.9, 1.1], "noise_snr_db": [10.0, 40.0],
                    "noise_prob": 0.5, "freq_masks": 2, "freq_width": 4, "time_masks": 2, "time_width": 10},
        "train": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-3, "batch_size": 64, "epochs": 30,
                  "schedule": "onecycle", "label_smoothing": 0.1},
    },
    # Self-supervised image pretraining (task: pretrain, SimCLR, BYOL or DINO; `seehear pretrain DIR`): the small
    # CNN, AdamW with a cosine schedule (contrastive losses like large batches and long runs; these are CPU-sized),
    # no test-time augmentation. Its backbone starts labelled runs with `train --from`. The views are SimCLR's for
    # CIFAR: a random resized crop, colour jitter of strength 0.4 (hue 0.1 turn) and 20% greyscale, on top of the
    # flip, translation, contrast and cutout every strong view gets (engine/fixmatch.strong_images): crops and colour
    # together are what the paper found essential (without colour, views match by their histograms).
    "image-ssl": {
        "task": "pretrain",
        "model": {"name": "small_cnn"},
        "image": {"size": 32, "resize": "stretch", "tta": "none"},
        "augment": {"flip": True, "crop_pad": 2, "resized_crop": [0.2, 1.0], "color_jitter": 0.4, "grayscale": 0.2},
        "train": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "batch_size": 128, "epochs": 30,
                  "schedule": "cosine", "warmup_epochs": 1.0, "label_smoothing": 0.0},
    },
    # Self-supervised speech pretraining (task: pretrain, BEST-RQ; `seehear pretrain AUDIO_DIR`): the features of
    # the "asr" recipe (so the encoder starts transcription runs as is), a tiny Conformer (the default one takes ~5x
    # the CPU time per step), masking in place of augmentation, AdamW with warm-up and a cosine decay.
    "audio-ssl": {
        "task": "pretrain",
        "data": {"valid_fraction": 0.1, "test_fraction": 0.0},  # 10% of the files held out: masked accuracy
        "model": {"name": "conformer_ctc_tiny"},
        "audio": {"sample_rate": 16000, "features": "logmel", "n_mels": 80, "normalize": "utterance",
                  "f_max": 8000.0},
        "augment": {"time_shift": 0.0, "speed": None, "noise_snr_db": None, "noise_prob": 0.0, "freq_masks": 0,
                    "time_masks": 0},
        "train": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-3, "batch_size": 16, "epochs": 30,
                  "schedule": "cosine", "warmup_fraction": 0.1, "label_smoothing": 0.0, "grad_clip": 5.0},
    },
}


def pick_recipe(modality: str, median_image_side: float | None = None) -> str:
    if modality == "audio":
        return "audio-words"
    if modality == "frames":
        return "frames"
    return "image-photo" if (median_image_side or 0) >= 64 else "image-small"


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def user_settings(config) -> dict:
    """Only what the user set (a RunConfig, a dict or a YAML file), so that everything else still comes from the
    recipe; checked now, so a bad name or type is a one-line error before any work."""
    from pathlib import Path

    import yaml

    if isinstance(config, RunConfig):
        return config.to_dict()
    if isinstance(config, dict):
        RunConfig.from_dict(config)
        return config
    if config:
        RunConfig.from_yaml(config)
        return yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    return {}


def resolve(recipe: str, user: dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults ← recipe ← user YAML dict ← `key=value` overrides. The recipe's model.kwargs are for the recipe's
    model only; the model's own registry defaults are filled in under whatever kwargs remain."""
    r = RECIPES[recipe]
    cfg = _merge(r, user, overrides)
    own = (r.get("model") or {}).get("name")
    if cfg.model.name not in (own, "auto") and (r.get("model") or {}).get("kwargs"):
        r = {**r, "model": {k: v for k, v in r["model"].items() if k != "kwargs"}}
        cfg = _merge(r, user, overrides)
    if cfg.model.name != "auto":
        from seehear.models.registry import get_spec

        try:
            cfg.model.kwargs = {**dict(get_spec(cfg.model.name).defaults), **cfg.model.kwargs}
        except ConfigError:
            pass  # an unknown model name is reported where the model is built, with the list of names
    return cfg


def _merge(recipe: dict, user: dict | None, overrides: list[str] | None) -> RunConfig:
    d = deep_merge(deep_merge(RunConfig().to_dict(), recipe), user or {})
    return RunConfig.from_dict(d).override(overrides or [])

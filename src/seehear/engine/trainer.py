"""Fit a Recognizer with Lightning: precision, logging, checkpoints, resume, EMA and early stopping come from the
framework; this file only chooses them from the RunConfig. Multi-GPU/multi-node is Lightning's `devices`/`strategy`.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

from seehear.config import RunConfig
from seehear.engine.checkpoint import AtomicCheckpointIO
from seehear.data.decode import pcm_to_float
from seehear.engine.base_module import batch_size_for
from seehear.engine.classify import ClassifyModule
from seehear.engine.imbalance import GROUP_SAMPLERS, class_weights, sample_weights
from seehear.engine.loaders import Batches, Prefetch
from seehear.errors import ConfigError
from seehear.features.policies import policies_on
from seehear.models.recognizer import Recognizer


def bf16_supported(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    # bf16 on CPU only pays off with native bf16 instructions (AVX512-BF16 or AMX); elsewhere it is emulated.
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def pick_device(cfg: RunConfig) -> str:
    a = cfg.train.accelerator
    if a in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("train.accelerator=gpu, but this machine has no usable GPU (torch sees no CUDA "
                              "device); use train.accelerator=auto or cpu")
        return "cuda"
    return "cuda" if a == "auto" and torch.cuda.is_available() else "cpu"


def pick_precision(cfg: RunConfig, device: str) -> str:
    p = str(cfg.train.precision)
    if p == "auto":
        return "bf16-mixed" if bf16_supported(device) else "32-true"
    return {"bf16": "bf16-mixed", "32": "32-true", "fp32": "32-true", "16": "16-mixed"}.get(p, p)


def set_threads(cfg: RunConfig) -> int:
    # data-parallel processes on one CPU share its cores rather than each taking all of them
    on_cpu = cfg.train.accelerator == "cpu" or not torch.cuda.is_available()  # (no error here: predict uses it)
    per = max(1, cfg.train.devices) if on_cpu else 1
    n = cfg.train.threads or max(1, (os.cpu_count() or 1) // per)
    torch.set_num_threads(n)
    return n


def pick_devices(cfg: RunConfig, device: str) -> tuple[int | str, str]:
    """(devices, strategy) for Lightning. More devices than the machine has is a one-line error."""
    t = cfg.train
    n = int(t.devices)
    have = torch.cuda.device_count() if device == "cuda" else (os.cpu_count() or 1)
    what = "GPUs" if device == "cuda" else "CPU cores"
    if n < 1:
        raise ConfigError(f"train.devices={n}: give at least 1")
    if n > have:
        raise ConfigError(f"train.devices={n}, but this machine has {have} {what}; use --devices {have} or fewer")
    if n == 1:
        return 1, "auto"
    # Some models leave parameters out of the loss for part of training (fastnet freezes its whitening bias at
    # 30%), which plain DDP refuses; finding them costs one graph walk per step.
    return n, "ddp_find_unused_parameters_true"


class _RanksAgree:
    """After data-parallel training, every rank's weights should be the same (DDP averages the gradients and
    each rank steps alike); checked by gathering a checksum of each rank's parameters, recorded in meta.json."""

    def __init__(self):
        import lightning.pytorch as pl

        outer = self
        self.checksums: list[float] = []

        class C(pl.Callback):
            def on_train_end(self, trainer, module):
                if trainer.world_size < 2:
                    return
                flat = torch.cat([q.detach().double().flatten() for q in module.parameters()])
                pos = torch.arange(1, len(flat) + 1, dtype=torch.float64)
                mine = (flat * pos).sum() / len(flat)  # position-weighted: a permutation changes it too
                outer.checksums = trainer.strategy.all_gather(mine.reshape(1)).reshape(-1).tolist()

        self.callback = C()

    def info(self) -> dict:
        if not self.checksums:
            return {}
        agree = max(self.checksums) - min(self.checksums) <= 1e-9 * max(1.0, abs(self.checksums[0]))
        return {"world_size": len(self.checksums), "ranks_agree": bool(agree),
                "rank_checksums": [round(c, 12) for c in self.checksums]}


def quiet_lightning() -> None:
    # Lightning's banners ("GPU available: False ...", "LOCAL_RANK") and hints are noise for a CLI user.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|num_workers|LeafSpec|isinstance).*")


class _EpochPrinter:
    """When stderr is no terminal (CI, logs), one plain line per epoch instead of a redrawn progress bar."""

    def __init__(self):
        import lightning.pytorch as pl

        class P(pl.Callback):
            def on_train_epoch_end(self, trainer, module):
                if not trainer.is_global_zero:
                    return
                m = {k: float(v) for k, v in trainer.callback_metrics.items()}
                keys = sorted(k for k in m if k.startswith(("train_", "val_")))  # whatever the task logs
                parts = [f"{k}={m[k]:.4f}" for k in keys]
                print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {' '.join(parts)} "
                      f"({module.train_seconds:.0f}s)", file=sys.stderr, flush=True)

        self.callback = P()


# Callbacks that a caller above the task layer (a tuning study's pruner, say) adds to every fit_module call made
# inside `extra_callbacks(...)`, without each task having to pass them through.
_EXTRA = contextvars.ContextVar("seehear_extra_callbacks", default=())


@contextlib.contextmanager
def extra_callbacks(callbacks):
    token = _EXTRA.set(tuple(_EXTRA.get()) + tuple(callbacks))
    try:
        yield
    finally:
        _EXTRA.reset(token)


def fit(model: Recognizer, cfg: RunConfig, train: tuple[torch.Tensor, torch.Tensor],
        valid: tuple[torch.Tensor, torch.Tensor] | None, run_dir: Path, resume: bool = False,
        progress: bool = True, unlabelled: torch.Tensor | None = None, groups: torch.Tensor | None = None) -> dict:
    """Train a classifier on in-memory (x, y) tensors; with `unlabelled` raw inputs, FixMatch (engine/fixmatch.py).
    `groups`: a group index per training example, which train.sampler=group_balanced draws evenly."""
    x, y = train
    t = cfg.train
    if t.sampler in GROUP_SAMPLERS and groups is None:
        raise ConfigError(f"train.sampler={t.sampler} needs the training examples' groups (train.group_by)")
    num_classes = len(model.labels)
    counts = torch.bincount(y, minlength=num_classes).float()
    # class weights (with DRW: from train.drw of training on); a sampler re-draws the examples instead
    class_w = class_weights(counts, t.class_weight_kind, t.effective_beta) \
        if t.class_weights or t.drw is not None else None
    batch_size = batch_size_for(len(y), t.batch_size)
    alternate = model.modality == "image" and cfg.augment.flip and cfg.augment.alternate_flip
    loader = Batches(x, y, batch_size, shuffle=True, seed=t.seed, drop_last=True, alternate_flip=alternate,
                     sample_weights=sample_weights(y, num_classes, t.sampler, groups))
    val_loader = Batches(*valid, batch_size=max(256, t.batch_size), shuffle=False) if valid and len(valid[1]) else None
    if t.episodic:  # prototypical training: one episode per step (engine/episodic.py)
        loader, val_loader, module = episodic_parts(model, cfg, train, valid, unlabelled)
        batch_size = t.episode_ways * (t.episode_shots + t.episode_queries)
    elif unlabelled is not None and len(unlabelled):
        from seehear.engine.fixmatch import FixMatchModule

        module = FixMatchModule(model, cfg, len(loader), unlabelled, class_weights=class_w, class_counts=counts)
    else:
        module = ClassifyModule(model, cfg, steps_per_epoch=len(loader), class_weights=class_w,
                                class_counts=counts)
    # Audio augmentation (resampling, noise) took a third of an FSDD step: on CPU it runs in a background thread
    # (data-wait share 35% -> 1%). Image augmentation is ~3% of a CIFAR step, less than a second thread costs in
    # contention on 2 cores (epoch 27 s -> 29 s), so it stays inline. On a GPU it runs on the device, inline.
    # The image policies (augment.policy, resized crops, colour jitter) are many small ops: inline, each one waited on
    # the other cores' threads of a busy machine (data-wait share 24-42% on CIFAR, bench/results/
    # augment-cifar10-subset.json before this), so with them on, images are prepared in the thread as well.
    policies = model.modality == "image" and policies_on(cfg.augment)
    if pick_device(cfg) == "cpu" and (model.modality == "audio" or policies):
        loader = Prefetch(loader, module.loader_augment, seed=t.seed)
        module.augment_in_loader = True
    init = getattr(model.backbone, "init_from_data", None)
    if init is not None:  # data-derived initialisation (fastnet's whitening layer); also on resume, see there.
        # A model started from other weights keeps their stem: its later layers learned on exactly that one.
        with torch.no_grad():
            init(model.frontend(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(t.seed))[:5000]]),
                 keep=bool(cfg.model.init_from or cfg.model.pretrained))
    if model.modality == "image":
        model.to(memory_format=torch.channels_last)
    info = fit_module(module, cfg, loader, val_loader, run_dir, resume=resume, progress=progress)
    model.eval()
    if hasattr(module, "summary"):
        info["fixmatch"] = module.summary()
    if t.episodic:
        info["episodic"] = {"ways": t.episode_ways, "shots": t.episode_shots, "queries": t.episode_queries,
                            "metric": t.episode_metric, "head_weight": t.episode_head_weight,
                            "episodes_per_epoch": len(loader), "validation_episodes": VAL_EPISODES}
    return {**info, "batch_size": batch_size}


def episodic_parts(model: Recognizer, cfg: RunConfig, train, valid, unlabelled):
    """(episode loader, validation episodes or None, EpisodicModule) for train.episodic; one line for what cannot
    be combined with it or what the data cannot fill."""
    from seehear.engine.episodes import Episodes, check_episodes
    from seehear.engine.episodic import EpisodicModule

    t = cfg.train
    if unlabelled is not None and len(unlabelled):
        raise ConfigError("train.episodic and unlabelled data (FixMatch) cannot be combined; use one of them")
    if t.devices > 1:
        raise ConfigError("train.episodic trains on one device; set train.devices=1")
    x, y = train
    check_episodes(y, t.episode_ways, t.episode_shots, t.episode_queries, model.labels)
    per = t.episode_ways * (t.episode_shots + t.episode_queries)
    loader = Episodes(x, y, t.episode_ways, t.episode_shots, t.episode_queries, max(1, len(y) // per), seed=t.seed)
    val_loader = None
    if valid is not None and len(valid[1]) and len(set(y.tolist()) & set(valid[1].tolist())) >= 2:
        val_loader = Episodes(x, y, t.episode_ways, t.episode_shots, t.episode_queries, VAL_EPISODES,
                              seed=t.seed + 1, query=valid)
    return loader, val_loader, EpisodicModule(model, cfg, len(loader))


VAL_EPISODES = 10  # train.episodic: validation episodes per epoch (the same each epoch; 30 cost more than the
# training steps of an FSDD epoch)


def fit_module(module, cfg: RunConfig, loader, val_loader, run_dir: Path, resume: bool = False,
               progress: bool = True, monitor: str = "val_acc", monitor_mode: str = "max",
               callbacks=None) -> dict:
    """Run Lightning on any task's module (classification, CTC, speaker embeddings) with the run's settings:
    precision, atomic resumable checkpoints, time budget (the module's `train_seconds`), EMA, early stopping on
    `monitor`, logs. `callbacks`: extra Lightning callbacks (as are those of `extra_callbacks`). Returns what
    happened."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    quiet_lightning()
    t = cfg.train
    pl.seed_everything(t.seed, workers=True, verbose=False)
    threads = set_threads(cfg)
    device = pick_device(cfg)
    precision = pick_precision(cfg, device)
    devices, strategy = pick_devices(cfg, device)
    agree = _RanksAgree()

    ckpt_dir = run_dir / "checkpoints"
    # One file, last.ckpt, rewritten every `checkpoint_every` epochs. Not save_last=True with save_top_k=0: since
    # Lightning 2.6 that writes "last" only when a top-k checkpoint was saved too, i.e. never until training ends.
    extra = list(callbacks or ()) + list(_EXTRA.get())
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_last=False,
                                 enable_version_counter=False, every_n_epochs=max(1, t.checkpoint_every),
                                 save_on_train_epoch_end=True)]
    if t.ema:
        callbacks.append(EMAWeightAveraging(decay=t.ema))
    if t.lookahead:
        from seehear.engine.lookahead import Lookahead

        callbacks.append(Lookahead())
    if t.early_stopping and val_loader is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=monitor_mode, patience=t.early_stopping))
    tty = sys.stderr.isatty()
    if progress and tty:
        callbacks.append(RichProgressBar(leave=True))
    elif progress:
        callbacks.append(_EpochPrinter().callback)
    callbacks += extra + [agree.callback]
    loggers = [CSVLogger(str(run_dir), name="logs", version=""),
               TensorBoardLogger(str(run_dir), name="logs", version="", default_hp_metric=False)]

    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=devices, strategy=strategy,
        precision=precision, max_epochs=t.epochs, logger=loggers, callbacks=callbacks,
        gradient_clip_val=t.grad_clip, deterministic=t.deterministic, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress and tty, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, len(loader))), limit_val_batches=1.0 if val_loader else 0,
        default_root_dir=str(run_dir))
    for dl in (loader, val_loader):
        if hasattr(dl, "follow"):  # shuffles from the trainer's epoch: a resumed run does not repeat epoch 0's
            dl.follow(lambda: trainer.current_epoch)
    last = ckpt_dir / "last.ckpt"
    start = time.time()
    # Ctrl-C asks the trainer to stop after the current step (a second one stops at once). A KeyboardInterrupt
    # raised wherever the main thread happens to be, e.g. inside a logger's queue, can leave a lock held and hang
    # the shutdown; a flag the loop checks cannot.
    interrupted: list[bool] = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        trainer.should_stop = True

    main = threading.current_thread() is threading.main_thread()
    # SIGTERM (`kill`, a container or job scheduler stopping the run) is handled like Ctrl-C.
    previous = {sig: signal.signal(sig, on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    # Denormal floats (below 1.2e-38) take a slow path on x86, and the tiny gradients of a mean loss can reach them.
    # Flushing them to zero while training, as TensorFlow does on CPU, measured +1.6% images/s on CIFAR-10
    # (bench/denormal_probe.py; within host noise) and cannot slow a step. It is a process-wide setting of the
    # caller's, so it is switched back off afterwards.
    flush = device == "cpu" and torch.set_flush_denormal(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer.fit(module, train_dataloaders=loader, val_dataloaders=val_loader,
                        ckpt_path=str(last) if resume and last.is_file() else None)
        except SystemExit:  # Lightning turns a KeyboardInterrupt into sys.exit(1)
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if flush:
                torch.set_flush_denormal(False)
    if interrupted:
        raise KeyboardInterrupt  # callers say how to resume from the last checkpoint
    module.eval()
    return {"epochs_run": int(trainer.current_epoch), "wall_seconds": round(time.time() - start, 2),
            "train_seconds": round(module.train_seconds, 2), "device": device, "precision": precision,
            "threads": threads, "resumed": bool(resume and last.is_file()),
            "stopped_early": bool(trainer.should_stop and trainer.current_epoch < t.epochs),
            "steps": int(trainer.global_step),
            # share of the training time spent getting and augmenting batches rather than in the model
            "data_wait_share": round(module.data_seconds / module.train_seconds, 4) if module.train_seconds else None,
            **agree.info()}


@torch.inference_mode()
def predict_probs(model: Recognizer, x: torch.Tensor, batch_size: int = 256,
                  precision: str = "auto") -> torch.Tensor:
    """Class probabilities for raw inputs (uint8 images or int16/float waves), in batches of `batch_size` views
    (with test-time augmentation, fewer inputs per batch, so that memory does not grow with the views).

    Runs under bf16 autocast where the hardware has it (as training does; 2-4x faster on CPU) unless
    precision="32"; images go in channels_last, the layout the convolutions are fastest in."""
    model.eval()
    dev = next(model.parameters()).device
    use_bf16 = str(precision) in ("auto", "bf16", "bf16-mixed") and bf16_supported(dev.type)
    if model.modality == "image":
        with torch.inference_mode(False):  # else 4-D buffers (ImageNormalize's mean/std) turn into inference
            model.to(memory_format=torch.channels_last)  # tensors that a later load_state_dict cannot copy into
    batch_size = max(1, batch_size // getattr(model, "views", 1))  # TTA multiplies the batch inside the model
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        if model.modality == "audio":
            xb = pcm_to_float(xb)
        elif xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(xb)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(model.labels))

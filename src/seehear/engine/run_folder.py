"""The run folder: the unit that evaluate, predict, export and serve consume.

meta.json is enough to rebuild the model and its input pipeline without the training data or the command.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

import seehear
from seehear.config import RunConfig
from seehear.engine.checkpoint import load_weights, read_json, save_weights, write_json
from seehear.errors import RunError
from seehear.models.recognizer import Recognizer, build_recognizer

FORMAT = 1  # bump when meta.json or the weights layout changes incompatibly


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "seehear": seehear.__version__}
    for pkg in ("torch", "torchaudio", "torchvision", "lightning", "timm", "numpy", "pillow", "soundfile"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def cpu_isa(flags: set[str]) -> str:
    """The CPU's widest matrix instructions, which decide what bf16 and int8 cost (time-budgeted results differ
    by kind: compare figures only across machines of the same kind)."""
    if "amx_bf16" in flags:
        return "amx-bf16"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512-vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2-vnni" if "avx_vnni" in flags else "avx2"
    return platform.machine() or "unknown"


def machine() -> dict:
    cpu, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": cpu, "isa": cpu_isa(flags), "cores": os.cpu_count(), "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def fingerprint(keys: list[str]) -> str:
    """Cheap identity of a data set: names and sizes of its files (content hashes would cost a full read)."""
    h = hashlib.blake2b(digest_size=12)
    for k in sorted(keys):
        path = k.split("#", 1)[0]
        size = os.path.getsize(path) if os.path.exists(path) else -1
        h.update(f"{k}\0{size}\n".encode())
    return h.hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_task(run_dir: str | Path) -> str:
    """The task a run folder was trained for (meta.json's `task`; runs before tasks existed are classify)."""
    f = Path(run_dir) / "meta.json"
    if not Path(run_dir).is_dir():
        raise RunError(f"run folder {run_dir} does not exist; train one with `seehear train DATA --out {run_dir}`")
    if not f.is_file():
        raise RunError(f"{run_dir} is not a seehear run folder (no meta.json)")
    meta = read_json(f)
    if not isinstance(meta, dict):
        raise RunError(f"{f} is not a seehear run description")
    return str(meta.get("task", "classify"))


def write_meta(run_dir: Path, meta: dict) -> None:
    meta = {"format": FORMAT, "seehear_version": seehear.__version__, **meta}
    write_json(run_dir / "meta.json", meta)


@dataclass
class LoadedRun:
    run_dir: Path
    model: Recognizer
    cfg: RunConfig
    meta: dict

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "classify"))

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    @property
    def modality(self) -> str:
        return self.model.modality


def save_model(run_dir: Path, model: Recognizer) -> None:
    save_weights(model.state_dict(), run_dir / "model.safetensors", metadata={"format": str(FORMAT)})


def resize_to(model: torch.nn.Module, shapes: dict) -> None:
    """Give `model` the tensor shapes and layer size attributes recorded in meta.json["shapes"] (by
    seehear.deploy.prune.shape_record), so that a pruned model's weights load into it."""
    for name, shape in shapes.get("tensor_shapes", {}).items():
        owner, _, attr = name.rpartition(".")
        mod = model.get_submodule(owner)
        cur = getattr(mod, attr, None)
        if isinstance(cur, torch.Tensor) and list(cur.shape) != list(shape):
            new = torch.empty(shape, dtype=cur.dtype)
            setattr(mod, attr, torch.nn.Parameter(new, cur.requires_grad) if isinstance(cur, torch.nn.Parameter)
                    else new)
    for owner, attrs in shapes.get("module_attrs", {}).items():
        mod = model.get_submodule(owner)
        for k, v in attrs.items():
            setattr(mod, k, int(v))


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist; train one with `seehear train DATA --out {run_dir}`")
    meta = read_json(run_dir / "meta.json")
    if not isinstance(meta, dict) or "labels" not in meta:
        raise RunError(f"{run_dir}/meta.json is not a seehear run description")
    if meta.get("task") == "transcribe":
        raise RunError(f"{run_dir} is a transcription run: load it with seehear.speech.recognize.load_transcriber "
                       f"(or use `seehear transcribe`)")
    if meta.get("task") == "synthesize":
        raise RunError(f"{run_dir} is a GAN run: make images with `seehear synthesize {run_dir} --per-class N --out "
                       f"DIR`")
    if meta.get("format") != FORMAT:
        raise RunError(f"{run_dir} was written by seehear {meta.get('seehear_version', '?')} (run format "
                       f"{meta.get('format')}); this is seehear {seehear.__version__} (format {FORMAT}): "
                       f"retrain it, or use the seehear version that wrote it")
    if meta.get("status") != "done" and not (run_dir / "model.safetensors").is_file():
        raise RunError(f"{run_dir} holds an unfinished run; finish it with `seehear train ... --out {run_dir} "
                       f"--resume`")
    cfg = RunConfig.from_dict(meta["config"])
    # The trained tensors are in model.safetensors: the run needs no pretrained file it started from (which may
    # have moved since), so the model is built without it.
    cfg.model.pretrained = None
    model = build_recognizer(cfg, meta["labels"], meta["modality"], meta.get("norm_stats"))
    if meta.get("shapes"):  # a pruned model (seehear compress): layers narrower than the registry builds
        resize_to(model, meta["shapes"])
    state = load_weights(run_dir / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RunError(f"{run_dir}/model.safetensors does not fit the model in meta.json "
                       f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    model.temperature.fill_(float((meta.get("calibration") or {}).get("temperature", 1.0)))  # seehear.trust
    if meta.get("logit_shift"):  # post-hoc logit adjustment (train.posthoc_tau)
        model.set_logit_shift(meta["logit_shift"])
    model.to(device).eval()
    return LoadedRun(run_dir, model, cfg, meta)


def describe_command() -> str:
    return " ".join([Path(sys.argv[0]).name] + sys.argv[1:])


# --- creating a run folder safely -----------------------------------------------------------------------------------

RUN_MARKERS = ("meta.json", "config.yaml")  # a folder holding one of these was written by seehear
# What a run folder holds; anything else in it (a user's file) keeps the folder from being replaced.
RUN_FILE_SUFFIXES = {".json", ".yaml", ".safetensors", ".png", ".html", ".onnx", ".arpa", ".model", ".vocab",
                     ".ckpt", ".tmp"}
RUN_SUBFOLDERS = {"checkpoints", "logs", "eval", "explain", "trust", "compress"}


def is_run_folder(path: Path) -> bool:
    return any((path / m).is_file() for m in RUN_MARKERS)


def _refuse_to_replace(out: Path, protect) -> str | None:
    """Why `out` must not be replaced, or None. Never the data, the current folder, a home folder or a parent
    of any of them, and only a folder that is a seehear run."""
    real = out.resolve()
    guarded = [Path.cwd().resolve(), Path.home().resolve(), Path(real.anchor)]
    guarded += [Path(p).expanduser().resolve() for p in protect if p is not None]
    for g in guarded:
        if real == g or real in g.parents:
            return f"{out} is (or holds) {g}"
    if not is_run_folder(out):
        return f"{out} is not a seehear run folder (no meta.json or config.yaml in it)"
    foreign = [e.name for e in out.iterdir() if not e.name.startswith(".") and not (
        (e.is_dir() and e.name in RUN_SUBFOLDERS) or (e.is_file() and e.suffix in RUN_FILE_SUFFIXES)
        or (e.is_file() and e.name.startswith("augmented_") and e.suffix == ".wav"))]  # evaluation/augmented.py
    if foreign:
        return f"it holds files seehear did not write ({', '.join(sorted(foreign)[:5])})"
    return None


@contextlib.contextmanager
def open_run_dir(out: str | Path, *, resume: bool, overwrite: bool, protect=()):
    """The run folder for a training run. resume: it must hold a run. A non-empty folder is replaced only with
    overwrite, only if it is a seehear run (see _refuse_to_replace), and only once the new run is safe: the old one
    is moved aside, and put back if the new run fails before writing its first checkpoint."""
    out = Path(out)
    if resume:
        if not (out / "config.yaml").is_file():
            raise RunError(f"nothing to resume in {out}: no config.yaml there (start the run without --resume)")
        yield out
        return
    aside = None
    try:
        busy = out.exists() and (not out.is_dir() or any(out.iterdir()))
    except PermissionError:
        raise RunError(f"{out} cannot be read (permission denied); choose another --out") from None
    if busy:
        if not overwrite:
            raise RunError(f"{out} already holds a run: use --resume to continue it, --overwrite to replace it, "
                           f"or another --out")
        why = _refuse_to_replace(out, protect) if out.is_dir() else f"{out} is a file"
        if why:
            raise RunError(f"will not replace {out}: {why}; choose another --out")
        aside = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        os.replace(out, aside)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".seehear-write-test"
        probe.touch()
        probe.unlink()
    except PermissionError:
        if aside is not None:
            os.replace(aside, out)
        raise RunError(f"cannot write to {out} (permission denied); choose another --out") from None
    try:
        yield out
    except BaseException:
        if aside is not None and not (out / "checkpoints" / "last.ckpt").is_file():
            shutil.rmtree(out, ignore_errors=True)  # only the new run's own files: the folder was made above
            os.replace(aside, out)
            aside = None
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


# --- data parallel: one writer ----------------------------------------------------------------------------------

def process_rank() -> int:
    """This process's rank in a data-parallel run, from the launcher's environment (torchrun sets RANK;
    Lightning's DDP launcher re-runs the command with LOCAL_RANK and NODE_RANK). 0 when not data parallel."""
    if os.environ.get("RANK", "").isdigit():
        return int(os.environ["RANK"])
    local, node = os.environ.get("LOCAL_RANK", "0"), os.environ.get("NODE_RANK", "0")
    local = int(local) if local.isdigit() else 0
    return local if node in ("", "0") else max(1, local)  # another node: never the writer


@contextlib.contextmanager
def rank_scratch(out: str | Path, *, resume: bool):
    """For ranks other than 0: the run folder is rank 0's alone. Such a rank does the same work (settings,
    split, model, training) in a private scratch folder that is deleted afterwards; when resuming, the scratch
    folder holds links to the run's files (config, split, checkpoints) so that every rank starts from the same
    state. A link is replaced, never written through, by the atomic writes."""
    import tempfile

    out = Path(out)
    if resume and not (out / "config.yaml").is_file():
        raise RunError(f"nothing to resume in {out}: no config.yaml there (start the run without --resume)")
    scratch = Path(tempfile.mkdtemp(prefix=f"seehear-rank{process_rank()}-"))
    try:
        if resume:
            for e in out.iterdir():
                (scratch / e.name).symlink_to(e.resolve(), target_is_directory=e.is_dir())
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

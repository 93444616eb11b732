"""Default starting points: seehear's own offline cache of pretrained backbones, one per recipe that takes one.

Like timm's or Hugging Face's cache, a folder under a home directory, but nothing is ever downloaded: it holds a
copy of a run that you made. `$SEEHEAR_HOME/start/<recipe>/` ($SEEHEAR_HOME defaults to ~/.seehear) holds a finished
run's model.safetensors, meta.json and config.yaml (and split.json, for the pretraining-overlap check), and
start.json: where it was copied from, the weights' SHA-256 and the files seehear wrote there (`seehear start clear`
removes those and nothing else). `seehear start set image-photo RUN` fills it, e.g. from `seehear pretrain PHOTOS`.

A run of that recipe starts from it (as `--from` would: its architecture and input size unless the user set them)
when the user named no start of their own (no --from, no model.pretrained, no model name) and model.start is auto;
tasks/classify.py applies `plan` and records the outcome in meta.json `start`. A default that does not fit the run
or is damaged is one warning line and a run from scratch, never an error: the user did not ask for it by name.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from seehear.atomic import atomic_write, read_json, write_json
from seehear.errors import ConfigError, RunError

KINDS = {"image-photo": "image"}  # the recipes that take a default start, and the modality it must have
RECORD = "start.json"
COPIED = ("model.safetensors", "meta.json", "config.yaml", "split.json")  # split.json only where the run has one
TASKS = ("classify", "pretrain")  # runs whose backbone starts a classifier
OPT_OUT = "--set model.start=scratch"


def home() -> Path:
    return Path(os.environ.get("SEEHEAR_HOME") or "~/.seehear").expanduser()


def folder(recipe: str) -> Path:
    return home() / "start" / recipe


def hint(recipe: str) -> str:
    return (f"set a default start for {recipe} runs with `seehear start set {recipe} RUN` (RUN: e.g. `seehear "
            f"pretrain PHOTOS --out runs/ssl-photo`, or any finished image run)")


def _kind(recipe: str) -> str:
    if recipe not in KINDS:
        raise ConfigError(f"{recipe!r} takes no default start; one of: {', '.join(KINDS)}")
    return recipe


def set_default(recipe: str, run) -> dict:
    """Copy finished run RUN into folder(recipe); returns its start.json. The run is checked first (one line)."""
    from seehear.engine.transfer import sha256, source_meta

    dest = folder(_kind(recipe))
    src = Path(run).expanduser().resolve()
    meta = source_meta(src)
    if meta.get("modality") != KINDS[recipe] or meta.get("task", "classify") not in TASKS:
        raise ConfigError(f"{run} is a run on {meta.get('modality')} (task {meta.get('task', 'classify')}); the "
                          f"{recipe} start must be a finished {KINDS[recipe]} run of task {' or '.join(TASKS)}")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} is a file, not a folder; move it away and set the start again")
    old = _record(dest) if (dest / RECORD).is_file() else {}
    wrote = [name for name in COPIED if (src / name).is_file()]
    for name in wrote:
        atomic_write(dest / name, lambda tmp, s=src / name: shutil.copyfile(s, tmp))
    for name in set(old.get("files") or []) - set(wrote):  # a file an earlier `start set` wrote, now stale
        if name in COPIED and (dest / name).is_file():
            (dest / name).unlink()
    rec = {"recipe": recipe, "from": str(src), "sha256": sha256(dest / "model.safetensors"),
           "model": meta["config"]["model"]["name"], "input": meta.get("input"), "task": meta.get("task", "classify"),
           "files": wrote}
    write_json(dest / RECORD, rec)
    return {**rec, "folder": str(dest)}


def clear_default(recipe: str) -> list[str]:
    """Remove the files `set_default` wrote in folder(recipe) (never others); returns their names."""
    dest = folder(_kind(recipe))
    if not dest.exists():
        return []
    if not (dest / RECORD).is_file():
        raise ConfigError(f"{dest} was not set by `seehear start set` (no {RECORD}); remove it yourself if you "
                          f"no longer want it")
    files = [n for n in _record(dest).get("files") or [] if n in COPIED and (dest / n).is_file()]
    for name in files + [RECORD]:
        (dest / name).unlink()
    if not any(dest.iterdir()):
        dest.rmdir()
    return files


def _record(dest: Path) -> dict:
    try:
        rec = read_json(dest / RECORD)
    except (RunError, OSError, UnicodeDecodeError):
        return {}
    return rec if isinstance(rec, dict) else {}


def show() -> list[dict]:
    """Each recipe's default start: {recipe, folder, state (set | not set | damaged), and what start.json says}."""
    rows = []
    for recipe in KINDS:
        dest = folder(recipe)
        row = {"recipe": recipe, "folder": str(dest)}
        if not dest.exists():
            rows.append({**row, "state": "not set"})
            continue
        problem = _damage(dest)
        rows.append({**row, **_record(dest), "state": f"damaged: {problem}" if problem else "set"})
    return rows


def _damage(dest: Path) -> str | None:
    """Why folder `dest` cannot start a run (weights not loaded yet), or None."""
    if not dest.is_dir():
        return f"{dest} is not a folder"
    lacking = [n for n in ("meta.json", "model.safetensors") if not (dest / n).is_file()]
    if lacking:
        return f"it lacks {' and '.join(lacking)}"
    try:
        meta = read_json(dest / "meta.json")
        meta["config"]["model"]["name"], meta["modality"]
    except RunError as e:
        return str(e).split(";")[0]
    except (KeyError, TypeError, IndexError, OSError, UnicodeDecodeError):
        return "its meta.json is not a seehear run description"
    from seehear.engine.transfer import sha256

    want = _record(dest).get("sha256")  # a folder put there by hand has no record: its weights load or not
    if want and sha256(dest / "model.safetensors") != want:
        return f"its model.safetensors changed since `seehear start set` (SHA-256 differs from {RECORD})"
    return None


def plan(recipe: str, cfg, user_named_model: bool) -> dict:
    """The start a classification run takes before fitting is checked: {kind, source, why} and `hint` when it is
    scratch and a default could be set. kind "default" means: try folder(recipe) (classify.py checks it fits)."""
    m = cfg.model
    named = _named(cfg)
    if named:
        return named
    if recipe not in KINDS:
        return {"kind": "scratch", "source": None, "why": f"the {recipe} recipe trains from scratch (no default start)"}
    if m.start == "scratch":
        return {"kind": "scratch", "source": None, "why": "model.start=scratch (the default start is off)"}
    dest = folder(recipe)
    if user_named_model:
        return {"kind": "scratch", "source": None, "hint": hint(recipe),
                "why": f"the run names its own model ({m.name}), so the default start is not used"}
    if not dest.exists():
        return {"kind": "scratch", "source": None, "why": f"no default start is set ({dest} does not exist)",
                "hint": hint(recipe)}
    problem = _damage(dest)
    if problem:
        return unfit(recipe, problem)
    rec = _record(dest)
    origin = f", set from {rec['from']}" if rec.get("from") else ""
    return {"kind": "default", "source": str(dest.resolve()),
            "why": f"the default start for {recipe} runs ({dest}{origin}); opt out with {OPT_OUT}"}


def unfit(recipe: str, problem: str) -> dict:
    """Scratch, because the default start is damaged or does not fit: said once on stderr, kept in meta.json."""
    import sys

    for where in {str(folder(recipe)), str(folder(recipe).resolve())}:  # transfer's messages name it as --from
        problem = problem.replace(f"--from {where} ", "it ")
    why = f"the default start {folder(recipe)} was not used: {problem}"
    print(f"warning: {why}; training from scratch (fix it with `seehear start set {recipe} RUN`, or {OPT_OUT})",
          file=sys.stderr)
    return {"kind": "scratch", "source": None, "why": why, "hint": hint(recipe)}


def is_default(run_dir) -> str | None:
    """The recipe whose default start folder `run_dir` is, or None (a --from of the user's own)."""
    p = Path(run_dir).expanduser().resolve()
    return next((r for r in KINDS if folder(r).expanduser().resolve() == p), None)


def check_fits(cfg, labels: list[str], modality: str, start_dir) -> None:
    """A dry run of what prepare will do: build this run's model and load the start into it (a few MB, a second at
    most), so that a default that does not fit is known before the run's settings are written."""
    from seehear.engine.transfer import init_from_run
    from seehear.models.recognizer import build_recognizer

    init_from_run(build_recognizer(cfg, labels, modality), start_dir, cfg, modality)


def resumed(run_dir, cfg) -> dict:
    """The start of a resumed run: what its meta.json said when it began, else what its settings say."""
    meta = run_dir / "meta.json"
    try:
        start = read_json(meta).get("start") if meta.is_file() else None
    except (RunError, AttributeError):
        start = None
    if isinstance(start, dict):
        return start
    named = _named(cfg)
    if named:
        return named
    return {"kind": "scratch", "source": None, "why": "from scratch"}


def _named(cfg) -> dict | None:
    """The start the settings name (--from, also the default start once chosen, or model.pretrained), or None."""
    m = cfg.model
    if m.init_from:
        recipe = is_default(m.init_from)
        why = f"the default start for {recipe} runs; opt out with {OPT_OUT}" if recipe else "--from (model.init_from)"
        return {"kind": "run", "source": str(Path(m.init_from).expanduser().resolve()), "why": why}
    if m.pretrained:
        return {"kind": "weights", "source": str(Path(m.pretrained).expanduser().resolve()),
                "why": "model.pretrained (local weights you named)"}
    return None

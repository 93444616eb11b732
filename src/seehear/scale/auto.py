"""`seehear auto DATA --budget 20m --out runs/auto`: pick the model family and recipe for DATA by successive halving,
then train the winner as OUT/best.

The candidates (scale/candidates.py) suit the data's kind: small images, photos or spoken words. Rung 0 trains each
for a short time; the top 1/eta by validation accuracy (ties: lower validation loss, then the earlier candidate) go
on to the next rung with eta times the time, ... down to one, which is trained with all the time left as OUT/best.
Every rung gets an equal share of the budget. Each run is an ordinary run folder (OUT/candidates/rR-NAME, OUT/best).

A candidate going on to the next rung is retrained from scratch with the longer budget rather than continued with
`--resume`: the schedules run on a run's own time budget (one-cycle anneals to zero at its end), so a continued run
would climb back up a schedule it had finished; retraining is what the short runs measured, at a cost of at most
1/eta of each later rung.

The budget is a limit. Rung r must end by (r + 1)/R of the usable budget (the budget less a margin): a run starts
only if its training, its slot less the mean time runs have spent outside training (decoding, measuring, writing),
is at least MIN_TRAIN_SECONDS within what is left of its rung's share; the runs a rung cannot fit are not started
(recorded as `cut`), and a rung with no time for any is skipped. The winner trains with all the time left.

OUT/auto.json, written atomically after every run, holds the plan, every run's result and the time spent; the same
command run again continues where a killed one stopped (finished runs are not retrained; the one that was
interrupted is tried again) and counts on the time already spent.
"""
from __future__ import annotations

import csv
import fcntl
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from seehear.atomic import write_json
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import read_json
from seehear.errors import ConfigError, RunError, SeehearError
from seehear.recipes import deep_merge, user_settings
from seehear.scale import candidates as cands
from seehear.scale.auto_report import candidate, why_chosen, write_report
from seehear.scale.space import fingerprint
from seehear.scale.tune import nested_settings

FORMAT = 1  # of auto.json; another format is not resumed
STATE = "auto.json"
MIN_RUN_SECONDS = 6.0  # one run: decode, a few training steps, validate and write; a rung gives each run at least this
MIN_TRAIN_SECONDS = 2.0  # training time of the shortest run worth starting
OVERHEAD_GUESS = 4.0  # seconds a run spends outside training, until one has been measured
FINAL_OVERHEAD_FACTOR = 1.25  # the winner's longer run validates more epochs than its measured short one


def margin(budget: float) -> float:
    """Kept back from the budget for what happens between runs (state, report) and timing noise."""
    return max(3.0, 0.05 * budget)


@dataclass
class AutoResult:
    out: Path
    best_run: Path | None  # None while the search is unfinished
    chosen: str | None
    val_accuracy: float | None
    test_accuracy: float | None
    elapsed_seconds: float
    finished: bool


def auto(data, out, *, budget: float, candidates: Sequence[str] | None = None,
         max_candidates: int = cands.MAX_CANDIDATES, eta: int = cands.ETA, config=None,
         label_pattern: str | None = None, split_by: str | None = None, overrides: Sequence[str] = (),
         progress: bool = True, stop_after_rung: int | None = None) -> AutoResult:
    """Search model families and recipe variants for DATA within `budget` seconds; the winner trains as OUT/best.
    `candidates` names them (see scale/candidates.py), else the first `max_candidates` that the budget allows.
    `stop_after_rung` ends the call after that rung (as a kill would; the same call again continues)."""
    from seehear.tasks.base import named_settings
    from seehear.tasks.classify import TASK, auto_settings

    clock = time.time()
    out = Path(out)
    if budget is None or budget <= 0:
        raise ConfigError("--budget must be a positive duration, e.g. 20m")
    if eta < 2:
        raise ConfigError(f"eta {eta}: successive halving keeps 1/eta of each rung; use 2 or more")
    user = deep_merge(deep_merge(user_settings(config), named_settings(label_pattern=label_pattern,
                                                                       split_by=split_by)), nested_settings(overrides))
    if user.get("task", "classify") != "classify":
        raise ConfigError("seehear auto picks classification recipes; task transcribe/speakers is not searched")
    if (user.get("model") or {}).get("name"):
        raise ConfigError("seehear auto picks the model family itself: drop model.name from --config/--set (or "
                          "use `seehear tune` to search the settings of one model)")
    _check_out(out)
    source = TASK.load(data, (user.get("data") or {}).get("label_pattern"))  # one class: a DataError here
    recipe, _ = auto_settings(source)
    pool = cands.all_candidates(recipe)
    if not pool:
        raise ConfigError(f"seehear auto has no candidates for recipe {recipe!r}")
    usable = budget - margin(budget)
    if candidates:
        names = [c for c, _, _ in pool]
        unknown = [c for c in candidates if c not in names]
        if unknown:
            raise ConfigError(f"unknown candidate(s) {', '.join(unknown)} for {recipe} data; choose from "
                              f"{', '.join(names)}")
        pool = [p for p in pool if p[0] in candidates]
        if len(pool) < 2:
            raise ConfigError("--candidates: name at least two (successive halving compares them)")
        if cands.slots(usable, cands.rung_sizes(len(pool), eta))[0] < MIN_RUN_SECONDS:
            raise ConfigError(_too_small(budget, len(pool), eta))
    else:
        n = cands.largest_fitting(usable, min(len(pool), max(2, max_candidates)), MIN_RUN_SECONDS, eta)
        if n is None:
            raise ConfigError(_too_small(budget, 2, eta))
        pool = pool[:n]
    _make_out(out)
    identity = {"format": FORMAT, "recipe": recipe, "modality": source.modality, "budget_seconds": budget,
                "eta": eta, "data": rf.fingerprint([r.key for r in source.records]),
                "candidates": [c for c, _, _ in pool], "settings": fingerprint(user)}
    with _lock(out):
        state = _open_state(out, identity)
        if state is None:
            state = _plan(identity, pool, user, source, usable)
            _save(out, state, 0.0)
        return _search(data, out, state, clock, progress, stop_after_rung, TASK)


def _too_small(budget: float, n: int, eta: int) -> str:
    need = MIN_RUN_SECONDS * n * len(cands.rung_sizes(n, eta))
    need = need + margin(need)
    return (f"--budget {budget:g}s is too small for even one rung of {n} candidates (each run needs at least "
            f"{MIN_RUN_SECONDS:g}s to decode, train and validate, and each of the {len(cands.rung_sizes(n, eta))} "
            f"rungs an equal share); give at least --budget {int(need) + 1}s")


def _check_out(out: Path) -> None:
    """OUT is new, empty, or an earlier `seehear auto`'s folder (it holds auto.json); nothing else is used."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; choose a folder")
    if out.is_dir():
        try:
            entries = [e.name for e in out.iterdir() if e.name != ".auto.lock"]
        except PermissionError:
            raise RunError(f"{out} cannot be read (permission denied); choose another --out") from None
        if entries and not (out / STATE).is_file():
            raise RunError(f"--out {out} holds files that `seehear auto` did not write (no {STATE}: "
                           f"{', '.join(sorted(entries)[:3])}); choose another --out")


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".seehear-write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise RunError(f"cannot write to --out {out} ({e.strerror or e}); choose another --out") from None


@contextmanager
def _lock(out: Path):
    """One `seehear auto` per OUT; the kernel releases the flock of a killed process, so it resumes at once."""
    f = open(out / ".auto.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RunError(f"another `seehear auto` is running on {out}; wait for it or use another --out") from None
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def _open_state(out: Path, identity: dict) -> dict | None:
    if not (out / STATE).is_file():
        return None
    state = read_json(out / STATE)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{out / STATE} is from another seehear version; use another --out")
    differ = [k for k, v in identity.items() if state.get("identity", {}).get(k) != v]
    if differ:
        raise RunError(f"{out} holds a `seehear auto` search with other {', '.join(differ)}; run the same command "
                       f"to continue it, or use another --out")
    return state


def _plan(identity: dict, pool, user: dict, source, usable: float) -> dict:
    """The candidates' complete settings and the rungs, fixed at the start so that a resumed search is the same."""
    from seehear.tasks.classify import TASK

    rows = []
    for name, family, s in pool:
        s = dict(s)
        factor = s.pop("lr_factor", None)
        settings = deep_merge(s, user)
        resolved = TASK.resolve(source, settings, [])[0]
        if factor is not None:  # a factor of the family's own learning rate, as resolved for this data
            settings = deep_merge(settings, {"train": {"lr": resolved.train.lr * factor}})
        rows.append({"name": name, "family": family, "variant": name[len(family) + 1:] or "default",
                     "model": resolved.model.name, "settings": settings})
    sizes = cands.rung_sizes(len(rows), identity["eta"])
    rungs = [{"rung": r, "size": n, "slot_seconds": round(s, 2), "status": "planned", "candidates": [], "runs": {}}
             for r, (n, s) in enumerate(zip(sizes, cands.slots(usable, sizes)))]
    rungs[0]["candidates"] = [c["name"] for c in rows]
    return {"format": FORMAT, "identity": identity, "status": "searching", "budget_seconds": identity["budget_seconds"],
            "margin_seconds": identity["budget_seconds"] - usable, "eta": identity["eta"],
            "recipe": identity["recipe"], "modality": identity["modality"], "candidates": rows, "rungs": rungs,
            "elapsed_seconds": 0.0, "sessions": 0}


def _save(out: Path, state: dict, elapsed: float) -> None:
    state["elapsed_seconds"] = round(elapsed, 2)
    write_json(out / STATE, state)


def _search(data, out: Path, state: dict, clock: float, progress: bool, stop_after_rung, task) -> AutoResult:
    before = state["elapsed_seconds"]
    state["sessions"] += 1
    spent = lambda: before + time.time() - clock  # noqa: E731  (a resumed search counts on)
    usable = state["budget_seconds"] - state["margin_seconds"]
    by_name = {c["name"]: c for c in state["candidates"]}
    rungs = state["rungs"]
    for r, rung in enumerate(rungs):
        if rung["status"] in ("done", "skipped"):
            continue
        final = r == len(rungs) - 1
        if r > 0 and not rung["candidates"]:
            last = max(i for i in range(r) if rungs[i]["status"] == "done")
            rung["candidates"] = cands.ranking(rungs[last])[:rung["size"]]
            if len(rung["candidates"]) < 2 and not final:  # nothing left to compare: on to the winner's run
                rung.update(status="skipped", why="one candidate left (an earlier rung was cut short)", candidates=[])
                continue
        rung["status"] = "running"
        todo = [c for c in rung["candidates"] if rung["runs"].get(c, {}).get("status") not in ("done", "failed")]
        for k, name in enumerate(todo):
            overhead = _overhead(state, name)
            if final:  # the winner: all the time that is left; it validates more epochs than its short run did
                overhead *= FINAL_OVERHEAD_FACTOR
                train_for = usable - spent() - overhead
            else:  # a rung's share of the budget ends at its deadline: a run starts only if it fits before it
                fits = min(rung["slot_seconds"], (usable * (r + 1) / len(rungs) - spent()) / (len(todo) - k))
                train_for = fits - overhead
            if train_for < MIN_TRAIN_SECONDS:
                why = (f"{len(todo) - k} run(s) not started: {max(0.0, train_for + overhead):.0f}s per run were "
                       f"left, and a run spends {overhead:.0f}s outside training")
                if final:
                    return _copy_winner(out, state, spent, progress, why)
                if r > 0 or rung["runs"]:
                    rung["cut"] = why
                    break
                train_for = MIN_TRAIN_SECONDS  # the search's first run: the plan gave it at least MIN_RUN_SECONDS
            run_dir = out / "best" if final else out / "candidates" / f"r{r}-{name}"
            if progress:
                print(f"rung {r} ({rung['size']} candidate(s)): {name} training for {train_for:.0f}s", flush=True)
            rung["runs"][name] = _run(data, run_dir, by_name[name]["settings"], train_for, task)
            _save(out, state, spent())
            if progress:
                print(f"  {_line(rung['runs'][name])}", flush=True)
        if not any(x["status"] == "done" for x in rung["runs"].values()):
            if rung["runs"]:
                state["status"] = "failed"
                _save(out, state, spent())
                raise RunError(f"every run of rung {r} failed (see {out / STATE}, e.g. "
                               f"{next(iter(rung['runs'].values())).get('error')})")
            rung.update(status="skipped", why=rung.pop("cut"), candidates=[])
        else:
            rung["status"] = "done"
        _save(out, state, spent())
        if progress and rung.get("cut"):
            print(f"rung {r} cut short: {rung['cut']}", flush=True)
        if stop_after_rung is not None and r >= stop_after_rung and not final:
            return AutoResult(out, None, None, None, None, spent(), False)
    return _chosen(out, state, spent, progress)


def _copy_winner(out: Path, state: dict, spent, progress: bool, why: str) -> AutoResult:
    """No time left to train the winner longer: its last candidate run is copied as OUT/best."""
    rungs = state["rungs"]
    last = max(i for i, g in enumerate(rungs[:-1]) if g["status"] == "done")
    winner = cands.ranking(rungs[last])[0]
    src = Path(rungs[last]["runs"][winner]["run_dir"])
    best = out / "best"
    if best.exists():  # a best run that a killed search left half-trained: replaced only if it is a seehear run
        if not rf.is_run_folder(best):
            raise RunError(f"{best} is not a seehear run folder; move it away and run the same command again")
        shutil.rmtree(best)
    shutil.copytree(src, best)
    rungs[-1].update(status="skipped", why=f"no time to train the winner again ({why}); OUT/best is a copy of "
                                          f"{src.name}", candidates=[winner],
                     runs={winner: {**rungs[last]["runs"][winner], "run_dir": str(best), "copied_from": str(src)}})
    return _chosen(out, state, spent, progress)


def _chosen(out: Path, state: dict, spent, progress: bool) -> AutoResult:
    final = state["rungs"][-1]
    winner = final["candidates"][0]
    result = final["runs"][winner]
    state["status"] = "done"
    state["chosen"] = {"name": winner, **{k: v for k, v in candidate(state, winner).items() if k != "name"},
                       "run_dir": str(out / "best"), "val_accuracy": result.get("val_accuracy"),
                       "test_accuracy": result.get("test_accuracy"), "copied_from": result.get("copied_from")}
    state["why"] = why_chosen(state)
    _save(out, state, spent())
    write_report(out, state)
    _save(out, state, spent())  # the report's time too
    if progress:
        print(state["why"], flush=True)
    return AutoResult(out, out / "best", winner, result.get("val_accuracy"), result.get("test_accuracy"),
                      state["elapsed_seconds"], True)


def _overhead(state: dict, name: str) -> float:
    """Seconds a run of `name` will spend outside training: the most its own earlier runs spent (validation every
    epoch makes this differ between families several times over), else the mean of all runs so far."""
    seen = [(c, x["wall_seconds"] - x["train_seconds"]) for g in state["rungs"] for c, x in g["runs"].items()
            if x.get("status") == "done" and x.get("train_seconds") is not None and not x.get("copied_from")]
    own = [v for c, v in seen if c == name]
    if own:
        return max(own)
    return sum(v for _, v in seen) / len(seen) if seen else OVERHEAD_GUESS  # the margin absorbs the spread


def _run(data, run_dir: Path, settings: dict, train_for: float, task) -> dict:
    """Train one candidate as an ordinary run folder; a candidate that diverges or cannot be built for this input
    is recorded as failed and the search goes on (that is part of what a search finds out)."""
    from seehear.tasks.base import train_task

    cfg = deep_merge(settings, {"train": {"time_budget": round(train_for, 2)}})
    row = {"run_dir": str(run_dir), "time_budget": round(train_for, 2)}
    t0 = time.time()
    try:
        r = train_task(task, data, run_dir, config=cfg, overwrite=True, progress=False)
    except RunError:
        raise  # a run folder that cannot be written: the search cannot go on either
    except (SeehearError, RuntimeError, ValueError, FloatingPointError) as e:
        return {**row, "status": "failed", "wall_seconds": round(time.time() - t0, 2), "train_seconds": None,
                "error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"}
    val = last_validation(run_dir)
    if val is None:
        raise RunError(f"{run_dir} logged no validation accuracy: the data has no validation split (use more data "
                       f"or data.valid_fraction); seehear auto ranks on it")
    info = r.meta.get("train") or {}
    return {**row, "status": "done", "wall_seconds": round(time.time() - t0, 2),
            "train_seconds": info.get("train_seconds"), "epochs": info.get("epochs_run"),
            "val_accuracy": val[0], "val_loss": val[1], "test_accuracy": r.metrics.get("accuracy"),
            "params": (r.meta.get("model") or {}).get("params")}


def last_validation(run_dir: Path) -> tuple[float, float | None] | None:
    """(accuracy, loss) of a run's last validation pass, from its logs/metrics.csv."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    last = None
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("val_acc"):
                loss = row.get("val_loss")
                last = (float(row["val_acc"]), float(loss) if loss else None)
    return last


def _line(x: dict) -> str:
    if x["status"] != "done":
        return f"failed: {x['error']}"
    return (f"val_acc={x['val_accuracy']:.4f} val_loss={x['val_loss'] or float('nan'):.4f} "
            f"({x['epochs']} epochs, {x['train_seconds']:.0f}s training, {x['wall_seconds']:.0f}s in all)")


__all__ = ["auto", "AutoResult", "last_validation", "margin", "MIN_RUN_SECONDS"]

"""Shared by every benchmark: where the data is, and one JSON file of results with everything needed to trust it
(command, machine, package versions, wall time, peak memory)."""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("SEEHEAR_BENCH_RESULTS", ROOT / "bench" / "results"))  # elsewhere: smoke runs
DATA = Path(os.environ.get("SEEHEAR_DATA", ROOT.parent / "shared" / "data"))
WORK = Path(os.environ.get("SEEHEAR_BENCH_WORK", "/tmp/seehear-bench"))


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"bench: {path} not found; set SEEHEAR_DATA to the folder that holds the benchmark data")
    return path


_peak_before_windows = 0.0  # the process's peak (MB) before the last new_peak_window(): the kernel forgets it


def _rss_hwm_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024, 1)


def peak_rss_mb() -> float:
    """The whole process's peak resident memory (and its children's), in MB."""
    return max(_peak_before_windows, _rss_hwm_mb())


def new_peak_window() -> bool:
    """Start measuring a stage's own peak: Linux resets the process's high-water mark when 5 is written to
    /proc/self/clear_refs, so that _rss_hwm_mb() afterwards is this stage's peak (peak_rss_mb() keeps the whole
    run's). False where that is not possible; the stage's figure is then the process's peak so far (an upper
    bound)."""
    global _peak_before_windows
    _peak_before_windows = peak_rss_mb()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def window_peak_mb() -> float:
    """Peak resident memory since new_peak_window(), in MB (children included)."""
    return _rss_hwm_mb()


def command() -> str:
    """The command that is running, as it can be typed again from the project root."""
    import shlex

    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return " ".join([".venv/bin/python", str(script), *map(shlex.quote, sys.argv[1:])])


def commit() -> str:
    """The git commit of the code that produced a result, with '+changes' when the tree differed from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                                "src", "bench/*.py"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


def run_accuracy(run_dir: Path):
    """A run's own held-out accuracy (metrics.json), so a figure from an under-trained run reads as such."""
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    return next((v["accuracy"] for v in m.values() if isinstance(v, dict) and "accuracy" in v), None)


def digits_run(run: str | None, data: str | None, name: str) -> tuple[Path, Path]:
    """(run folder, data) for the int8 probes: the given run, or a digits run trained here for 40 s."""
    import seehear
    from seehear.data.synth import make_digit_images

    if run is not None:
        return Path(run), Path(data)
    data = make_digit_images(WORK / "digits-png") if data is None else Path(data)
    return seehear.train(data, WORK / "runs" / name, time_budget=40, overwrite=True, progress=False).run_dir, data


def learning_curve(run_dir: Path, metric: str) -> list[dict]:
    """A run's held-out `metric` (e.g. val_uer, val_acc) after each epoch against training minutes, from the
    run's logs/metrics.csv (TrainModule logs train_seconds every epoch)."""
    import csv

    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    seconds, values = {}, {}
    for row in csv.DictReader(path.open()):
        e = row.get("epoch")
        if row.get("train_seconds"):
            seconds[e] = float(row["train_seconds"])
        if row.get(metric):
            values[e] = float(row[metric])
    return [{"epoch": int(e) + 1, "train_minutes": round(seconds[e] / 60, 2), metric: round(values[e], 4)}
            for e in sorted(values, key=int) if e in seconds]


class Bench:
    """with Bench("fsdd") as b: b.figures[...] = ...; b.goals[...] = {...}  → bench/results/fsdd.json
    (results=FOLDER: FOLDER/fsdd.json instead, e.g. bench/results/probes, or /tmp for smoke runs)"""

    def __init__(self, name: str, results: Path | None = None):
        self.name, self.figures, self.goals, self.notes = name, {}, {}, []
        self.results = Path(results) if results is not None else RESULTS

    def __enter__(self):
        self.t0 = time.time()
        self.commit = commit()  # the code that runs is the code at the start (modules are imported then)
        return self

    def goal(self, key: str, target, measured, higher_is_better: bool = True, unit: str = ""):
        met = measured >= target if higher_is_better else measured <= target
        self.goals[key] = {"target": target, "measured": measured, "met": bool(met), "unit": unit}

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        from seehear.engine.run_folder import machine, versions

        now = commit()
        if now != self.commit:
            self.notes.append(f"the code was at {self.commit} when this started; the tree moved to {now} while it "
                              f"ran (what was already imported kept running)")
        out = {"benchmark": self.name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": command(), "commit": self.commit,
               "machine": machine(), "versions": versions(), "wall_seconds": round(time.time() - self.t0, 1),
               "peak_memory_mb": peak_rss_mb(), "goals": self.goals, "figures": self.figures, "notes": self.notes}
        self.results.mkdir(parents=True, exist_ok=True)
        from seehear.atomic import write_json

        path = write_json(self.results / f"{self.name}.json", out)
        print(json.dumps({"goals": self.goals, "wall_seconds": out["wall_seconds"],
                          "peak_memory_mb": out["peak_memory_mb"]}, indent=2))
        print(f"written {path}")
        return False

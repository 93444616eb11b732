"""`seehear label RUN NEW_DIR [--review review.csv]`: the model's labels for unlabelled files, with calibrated
confidences (the run's temperature scaling, meta.json["calibration"]), and the files most worth a person's review.

Review order: lowest margin first (top-1 minus top-2 probability; ties by lower confidence). A small margin is where
the model hesitates between two classes, which is where a person's label changes most (margin sampling, Scheffer
et al. 2001). Few-shot classes (tasks/fewshot.py) are included when the run has them.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from seehear.atomic import write_text
from seehear.data.sources import list_files
from seehear.engine import run_folder as rf
from seehear.engine.trainer import set_threads
from seehear.errors import DataError

FIELDS = ["file", "label", "confidence", "margin", "second", "second_confidence", "error"]


def require_unlabelled(folder) -> Path:
    """A folder of files, not a labelled data set (class subfolders): that one is for `evaluate`/`train`."""
    p = Path(folder)
    if not p.is_dir():
        raise DataError(f"{p} is not a folder: give a folder of unlabelled files")
    subs = sorted(d.name for d in p.iterdir() if d.is_dir() and any(f.is_file() for f in d.iterdir()))
    if subs:
        raise DataError(f"{p} has subfolders ({', '.join(subs[:5])}), so it looks labelled: give a folder of "
                        f"unlabelled files, or measure the run on it with `seehear evaluate`")
    return p


def label_rows(run, folder) -> list[dict]:
    """One row per file: label, confidence, margin to the runner-up; unreadable files get `error`."""
    from seehear.tasks.classify import predict

    require_unlabelled(folder)
    rows = []
    for r in predict(run, [str(folder)], top_k_labels=2):
        if "error" in r:
            rows.append({"file": r["file"], "error": r["error"]})
            continue
        top = r["top"]
        second = top[1] if len(top) > 1 else {"label": "", "probability": 0.0}
        rows.append({"file": r["file"], "label": top[0]["label"], "confidence": top[0]["probability"],
                     "margin": round(top[0]["probability"] - second["probability"], 4), "second": second["label"],
                     "second_confidence": second["probability"]})
    return rows


def review_order(rows: list[dict]) -> list[dict]:
    """Unreadable files first (a person must look), then by margin, then by confidence, lowest first."""
    return sorted(rows, key=lambda r: (0, 0.0, 0.0) if "error" in r else (1, r["margin"], r["confidence"]))


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def label(run, folder, *, out=None, review=None) -> dict:
    """Write OUT (every file's label, input order) and REVIEW (the same rows, most doubtful first)."""
    loaded = rf.load_run(run)
    set_threads(loaded.cfg)
    rows = label_rows(run, folder)
    out = Path(out) if out else Path(run) / "labels" / f"{Path(folder).resolve().name}.csv"
    write_text(out, _csv(rows))
    if review:
        write_text(review, _csv(review_order(rows)))
    return {"labelled": sum("error" not in r for r in rows), "out": str(out), "review": str(review) if review else None,
            "skipped": [r for r in rows if "error" in r], "rows": rows}

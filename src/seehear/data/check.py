"""`seehear data check`: what is in a dataset and what will go wrong, before any training time is spent."""
from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf
from PIL import Image

from seehear.config import DataConfig
from seehear.data.frames import sequence_info
from seehear.data.sources import load_source
from seehear.data.splits import content_digests
from seehear.errors import CorruptFileError

SILENT_PEAK = 1e-4
CLIP_LEVEL, CLIP_SHARE = 0.999, 0.001
FEW_EXAMPLES = 10
IMBALANCE_WARN = 3.0
MAX_PIXELS = DataConfig().max_image_pixels


def check_data(path, *, label_pattern=None, modality="auto") -> dict:
    """A JSON-able report: counts, imbalance, unreadable files, duplicates, sizes or audio levels, warnings."""
    src = load_source(path, label_pattern=label_pattern, modality=modality)
    recs = src.records
    classes = Counter(r.label for r in recs if r.label is not None)
    rep: dict = {"path": src.root, "kind": src.kind, "modality": src.modality, "num_examples": len(recs),
                 "classes": dict(sorted(classes.items())), "num_classes": len(classes),
                 "imbalance": round(max(classes.values()) / min(classes.values()), 2) if classes else None,
                 "groups": len({r.group for r in recs if r.group is not None}) or None,
                 "splits": dict(Counter(r.split for r in recs if r.split)) or None,
                 "problems": list(src.problems)}

    infos = _scan(recs, src.modality)
    rep["unreadable"] = [{"key": recs[i].key, "reason": info["error"]} for i, info in enumerate(infos)
                         if "error" in info]
    ok = [info for info in infos if "error" not in info]
    rep["images" if src.modality in ("image", "frames") else "audio"] = (
        _image_stats if src.modality in ("image", "frames") else _audio_stats)(ok)
    if src.modality == "frames":  # image sequences: their frame sizes above, their lengths here
        rep["frames"] = _spread([f["frames"] for f in ok])

    groups = defaultdict(list)
    for i, d in content_digests(recs).items():
        if not d.startswith("size:"):
            groups[d].append(i)
    dups = [sorted(g) for g in groups.values() if len(g) > 1]
    rep["duplicates"] = sorted(([recs[i].key for i in g] for g in dups), key=lambda g: g[0])
    conflicting = sum(1 for g in dups if len({recs[i].label for i in g}) > 1)
    rep["warnings"] = _warnings(rep, classes, conflicting)
    return rep


def _scan(recs, modality) -> list[dict]:
    """Per record: cheap facts (header; for audio the samples, to find silence and clipping) or {'error': ...}."""
    if modality == "image" and recs and all(r.member is not None for r in recs):
        from seehear.data.decode import read_idx  # IDX: every member has the file's shape

        shapes = {p: read_idx(p).shape for p in {r.path for r in recs}}
        return [{"width": shapes[r.path][2], "height": shapes[r.path][1], "mode": "L", "format": "IDX"}
                for r in recs]
    fn = {"image": _image_facts, "frames": _sequence_facts}.get(modality, _audio_facts)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda r: fn(r.path), recs))


def _image_facts(path) -> dict:
    try:
        with Image.open(path) as im:
            facts = {"width": im.size[0], "height": im.size[1], "mode": im.mode, "format": im.format}
            if im.size[0] * im.size[1] > MAX_PIXELS:  # never decode a likely bomb just to check it
                return {"error": f"image is {im.size[0]}x{im.size[1]}, over data.max_image_pixels={MAX_PIXELS:,}"}
            if im.format == "JPEG":
                im.draft(im.mode, (64, 64))  # decoding a small version still proves the data is intact
            im.load()
        return facts
    except Exception as e:  # noqa: BLE001 - any failure here is what the report is for
        return {"error": f"{type(e).__name__}: {e}"}


def _sequence_facts(path) -> dict:
    try:
        return sequence_info(path)
    except CorruptFileError as e:
        return {"error": e.reason}


def _audio_facts(path) -> dict:
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        if x.size == 0:
            raise CorruptFileError(path, "file holds no samples")
        info = sf.info(path)
    except CorruptFileError as e:
        return {"error": e.reason}
    except Exception as e:  # noqa: BLE001
        return {"error": f"not readable audio: {e}"}
    a = np.abs(x)
    return {"sample_rate": sr, "channels": x.shape[1], "duration": len(x) / sr, "format": info.format,
            "peak": float(a.max()), "clipped": float((a >= CLIP_LEVEL).mean()) > CLIP_SHARE, "path": path}


def _spread(vals) -> dict | None:
    if not vals:
        return None
    med = statistics.median(vals)
    return {"min": min(vals), "median": int(med) if float(med).is_integer() else med, "max": max(vals)}


def _image_stats(ok) -> dict:
    return {"width": _spread([f["width"] for f in ok]), "height": _spread([f["height"] for f in ok]),
            "modes": dict(Counter(f["mode"] for f in ok)), "formats": dict(Counter(f["format"] for f in ok))}


def _audio_stats(ok) -> dict:
    dur = _spread([round(f["duration"], 3) for f in ok])
    return {"sample_rates": {str(k): v for k, v in sorted(Counter(f["sample_rate"] for f in ok).items())},
            "channels": {str(k): v for k, v in sorted(Counter(f["channels"] for f in ok).items())},
            "duration": dur, "formats": dict(Counter(f["format"] for f in ok)),
            "silent": sorted(f["path"] for f in ok if f["peak"] < SILENT_PEAK),
            "clipped": sorted(f["path"] for f in ok if f["clipped"])}


def _warnings(rep, classes, conflicting) -> list[str]:
    w = []
    if not classes:
        w.append("no labels: training needs one subfolder per class, a manifest label column or --label-pattern")
    elif len(classes) == 1:
        w.append(f"only one class ({next(iter(classes))!r}): training needs at least two")
    few = sorted((n, label) for label, n in classes.items() if n < FEW_EXAMPLES)
    if len(few) > 3:  # one line, not one per class, when many classes are small
        w.append(f"{len(few)} classes have fewer than {FEW_EXAMPLES} examples (fewest: {few[0][1]!r} with {few[0][0]})")
    else:
        w += [f"class {label!r} has only {n} examples" for n, label in few]
    if rep["imbalance"] and rep["imbalance"] >= IMBALANCE_WARN:
        big, small = max(classes, key=classes.get), min(classes, key=classes.get)
        w.append(f"imbalance {rep['imbalance']:g}:1 ({big!r} {classes[big]}, {small!r} {classes[small]}) — "
                 f"consider train.sampler=balanced, train.loss=logit_adjusted or train.class_weights=true")
    if rep["unreadable"]:
        w.append(f"{len(rep['unreadable'])} files cannot be read and will be skipped")
    if rep["duplicates"]:
        n = sum(len(g) for g in rep["duplicates"])
        w.append(f"{n} files in {len(rep['duplicates'])} groups have identical content: copies across splits "
                 f"inflate test scores")
    if conflicting:
        w.append(f"{conflicting} groups of identical files carry different labels")
    if rep["problems"]:
        w.append(f"{len(rep['problems'])} problems while listing the data (see problems)")
    a = rep.get("audio")
    if a:
        if a["silent"]:
            w.append(f"{len(a['silent'])} recordings are silent (peak < {SILENT_PEAK:g})")
        if a["clipped"]:
            w.append(f"{len(a['clipped'])} recordings are clipped (> {CLIP_SHARE:.1%} of samples at full scale)")
        if len(a["sample_rates"]) > 1:
            w.append(f"sample rates differ ({', '.join(a['sample_rates'])} Hz): all are resampled to "
                     f"audio.sample_rate")
    im = rep.get("images")
    if im and im["width"] and min(im["width"]["min"], im["height"]["min"]) < 16:
        w.append(f"smallest image is {im['width']['min']}x{im['height']['min']} pixels: very little to learn from")
    if rep["groups"] is not None and rep["groups"] < 3:
        w.append(f"only {rep['groups']} speakers/groups: a held-out split by group needs at least 3")
    return w


def format_report(report: dict) -> str:
    """Plain-text rendering of a check_data report."""
    r = report
    lines = [f"data      {r['path']}", f"kind      {r['kind']} ({r['modality']})",
             f"examples  {r['num_examples']} in {r['num_classes']} classes"
             + (f", imbalance {r['imbalance']:g}:1" if r.get("imbalance") else "")]
    if r.get("groups"):
        lines.append(f"groups    {r['groups']}")
    if r.get("splits"):
        lines.append("splits    " + ", ".join(f"{k} {v}" for k, v in sorted(r["splits"].items())))
    if r["classes"]:
        width = max(len(str(k)) for k in r["classes"])
        top = max(r["classes"].values())
        lines += ["", "class".ljust(width) + "  count"]
        lines += [f"{k!s:<{width}}  {v:>5}  {'#' * max(1, round(30 * v / top))}" for k, v in r["classes"].items()]
    im, au = r.get("images"), r.get("audio")
    if im and im["width"]:
        sz = lambda k: f"{im['width'][k]}x{im['height'][k]}"  # noqa: E731
        lines += ["", f"image size  min {sz('min')}  median {sz('median')}  max {sz('max')}",
                  "modes       " + ", ".join(f"{k} {v}" for k, v in im["modes"].items())]
    if r.get("frames"):
        f = r["frames"]
        lines.append(f"frames      min {f['min']}  median {f['median']}  max {f['max']} per example")
    if au and au["duration"]:
        d = au["duration"]
        lines += ["", f"duration    min {d['min']:.2f}s  median {d['median']:.2f}s  max {d['max']:.2f}s",
                  "sample rate " + ", ".join(f"{k} Hz x{v}" for k, v in au["sample_rates"].items()),
                  "channels    " + ", ".join(f"{k} x{v}" for k, v in au["channels"].items())]
    for title, items in (("unreadable", [f"{u['key']}: {u['reason']}" for u in r["unreadable"]]),
                         ("duplicates", [" = ".join(g) for g in r["duplicates"]]),
                         ("silent", (au or {}).get("silent", [])), ("clipped", (au or {}).get("clipped", [])),
                         ("problems", r["problems"])):
        if items:
            lines += ["", f"{title} ({len(items)})"] + [f"  {x}" for x in items[:20]]
            lines += [f"  ... {len(items) - 20} more"] if len(items) > 20 else []
    lines += ["", "warnings" if r["warnings"] else "no warnings"] + [f"  ! {w}" for w in r["warnings"]]
    return "\n".join(lines)

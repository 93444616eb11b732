"""report.html: one self-contained page per run (PNGs inlined as base64, inline CSS, no JS, no network).

Every input file is optional: a report is useful even for a half-finished run, so each section shows what the
run folder has and is left out otherwise. Every string that came from the user (labels, paths, config) is
escaped; labels are arbitrary folder names and may contain anything.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from seehear.errors import RunError
from seehear.evaluation.html import CSS, MAX_ROWS, cards, duration, img, kv, num, params, pct, table
from seehear.evaluation.report_tasks import gan_quality_section, speakers_section, transcription_section

PLOTS = [("confusion.png", "Confusion matrix"), ("curves.png", "Training curves"),
         ("reliability.png", "Calibration"), ("augmented.png", "Augmented training examples")]


def _load_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunError(f"{path} cannot be read as JSON ({e}); re-run evaluation to rewrite it") from e


def _classes(labels: list) -> str:
    shown = ", ".join(map(str, labels[:20]))  # the per-class table has them all; the summary stays short
    return f"{len(labels)}: {shown}" + (", …" if len(labels) > 20 else "")


def _pick_metrics(metrics) -> tuple[str | None, dict | None]:
    """The split to headline: test if present, else valid; a bare compute_metrics dict is accepted too."""
    if not isinstance(metrics, dict):
        return None, None
    if "accuracy" in metrics:
        return "test", metrics
    for split in ("test", "valid"):
        if isinstance(metrics.get(split), dict):
            return split, metrics[split]
    return None, None


def _summary(meta: dict, metrics, split, m) -> str:
    parts = []
    if m:
        tiles = [("accuracy", pct(m.get("accuracy"))), ("macro-F1", num(m.get("macro_f1"))),
                 ("UAR (balanced acc.)", pct(m.get("balanced_accuracy")))]
        if "top5_accuracy" in m:
            tiles.append(("top-5 accuracy", pct(m["top5_accuracy"])))
        for key, name in (("accuracy_image_only", "image alone"), ("accuracy_audio_only", "audio alone")):
            if key in m:  # audio-image runs: each input alone, the other marked absent
                tiles.append((name, pct(m[key])))
        if "worst_group" in m:
            w = m["worst_group"]
            tiles.append((f"worst group: {w.get('group')}", pct(w.get("accuracy"))))
        parts.append('<div class="cards">' + "".join(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for k, v in tiles) + "</div>")
        parts.append(f'<p class="sub">on the {escape(split)} split, n = {escape(str(m.get("n", "?")))}; '
                     f'ECE {escape(num(m.get("ece")))}, NLL {escape(num(m.get("nll")))}</p>')
        other = "valid" if split == "test" else None
        if other and isinstance(metrics, dict) and isinstance(metrics.get(other), dict):
            o = metrics[other]
            parts.append(f'<p class="sub">{other}: accuracy {escape(pct(o.get("accuracy")))}, '
                         f'macro-F1 {escape(num(o.get("macro_f1")))}, '
                         f'UAR {escape(pct(o.get("balanced_accuracy")))}</p>')
    else:
        parts.append('<p class="muted">No metrics.json in this run folder (training may not have finished).</p>')
    parts.append(_run_facts(meta))
    return "".join(parts)


def _started(start) -> str:
    """One line near the top: what the model started from (meta.json `start`), with how to set a default."""
    if not isinstance(start, dict) or "kind" not in start:
        return ""
    what = str(start["kind"]) + (f" {start['source']}" if start.get("source") else "")
    what += f" (SHA-256 {str(start['sha256'])[:12]}…)" if start.get("sha256") else ""
    tail = "".join(f" — {start[k]}" for k in ("why", "hint") if start.get(k))
    return f'<p class="sub"><b>Started from:</b> {escape(what + tail)}</p>'


def _run_facts(meta: dict) -> str:
    """The run's data, model and training, as a key-value table."""
    data, model, train = meta.get("data") or {}, meta.get("model") or {}, meta.get("train") or {}
    counts = data.get("counts")
    counts_s = ", ".join(f"{k} {v}" for k, v in counts.items()) if isinstance(counts, dict) else counts
    labels = meta.get("labels")
    kwargs = model.get("kwargs")
    return kv([
        ("data", data.get("source")), ("data kind", data.get("kind")), ("examples", counts_s),
        ("modality", meta.get("modality")),
        ("classes", _classes(labels) if isinstance(labels, list) else None),
        ("input", ", ".join(f"{k}={v}" for k, v in meta["input"].items())
         if isinstance(meta.get("input"), dict) else None),
        ("model", model.get("name")),
        ("model settings", ", ".join(f"{k}={v}" for k, v in kwargs.items()) if isinstance(kwargs, dict) else None),
        ("parameters", params(model["params"]) if "params" in model else None),
        ("epochs", train.get("epochs_run")),
        ("training time", duration(train["wall_seconds"]) if "wall_seconds" in train else None),
        ("device", train.get("device")), ("precision", train.get("precision")),
        ("status", meta.get("status")), ("created", meta.get("created")),
        ("seehear", meta.get("seehear_version")),
    ])


def _per_class(m: dict, train_counts: dict | None = None) -> str:
    pc = m.get("per_class") or {}
    if not pc:
        return ""
    tc = train_counts if isinstance(train_counts, dict) else {}
    # training examples beside recall: a rare class's low recall is seen next to its count (class imbalance)
    rows = [[lab, tc.get(lab, ""), num(c.get("precision")), num(c.get("recall")), num(c.get("f1")),
             c.get("support", "")] for lab, c in pc.items()]
    f1s = [c.get("f1", 1.0) for c in pc.values()]
    # highlight the weakest quarter of classes (by F1) so problem classes stand out in long tables
    cut = sorted(f1s)[len(f1s) // 4] if len(f1s) >= 4 else -1
    html = table(["class", "trained on", "precision", "recall", "F1", "support"], rows, numeric={1, 2, 3, 4, 5},
                  row_class=lambda r: "low" if f1s[r] < cut else "")
    conf = m.get("confusion")
    labels = list(pc)
    if conf and len(conf) == len(labels):
        pairs = sorted(((conf[i][j], labels[i], labels[j]) for i in range(len(conf)) for j in range(len(conf))
                        if i != j and conf[i][j] > 0), key=lambda t: -t[0])[:10]
        if pairs:
            html += "<h3>Most frequent confusions</h3>" + table(
                ["true", "predicted as", "count"], [[t, p, n] for n, t, p in pairs], numeric={2})
    return html


def _per_group(m: dict) -> str:
    pg = m.get("per_group") or {}
    if not pg:
        return ""
    items = sorted(pg.items(), key=lambda kv: (kv[1].get("accuracy", 0), kv[0]))  # worst first
    rows = [[g if g != "" else "(none)", pct(v.get("accuracy")), v.get("n", "")] for g, v in items[:MAX_ROWS]]
    more = f'<p class="muted">… and {len(items) - MAX_ROWS} more groups</p>' if len(items) > MAX_ROWS else ""
    return table(["group", "accuracy", "n"], rows, numeric={1, 2}) + more


def _compression(c) -> str:
    """The table `seehear compress` leaves in compress.json: what each form of the model costs and scores."""
    if not isinstance(c, dict) or not isinstance(c.get("table"), list):
        return ""
    cols = [("model", "model"), ("parameters", "parameters"), ("weights (KB)", "weights_kb"),
            ("ONNX (KB)", "onnx_kb"), ("MFLOPs", "mflops"), ("batch-1 latency (ms)", "latency_ms_batch1"),
            ("held-out accuracy", "accuracy")]
    rows = [[r.get(k, "—") for _, k in cols] for r in c["table"] if isinstance(r, dict)]
    note = f'<p class="sub">{escape(str(c["note"]))}</p>' if c.get("note") else ""
    return table([h for h, _ in cols], rows, numeric=set(range(1, len(cols)))) + _int8_path(c.get("int8")) + note


def _int8_path(q) -> str:
    """Which int8 path compress took: post-training quantization, or quantization-aware training after it."""
    if not isinstance(q, dict) or "path" not in q:
        return ""

    def acc(d):
        if "skipped" in d:
            return "skipped"
        return "refused" if "refused" in d else pct(d.get("accuracy_int8", d.get("top1_agreement_with_fp32")))

    ptq, qat = q.get("ptq") or {}, q.get("qat")
    text = f"int8: post-training quantization (PTQ), {acc(ptq)} on the held-out check inputs"
    if qat is not None:
        text += (f"; quantization-aware training (QAT, {qat.get('epochs')} epoch(s)) → {acc(qat)}; "
                 f"kept: {q['path'].upper()}")
    return f'<p class="sub">{escape(text)}</p>'


def _skipped(skipped) -> str:
    if skipped is None:
        return ""
    if not skipped:
        return '<p class="muted">No files were skipped.</p>'
    rows = [list(s)[:2] if isinstance(s, (list, tuple)) else [s, ""] for s in skipped[:MAX_ROWS]]
    more = f'<p class="muted">… and {len(skipped) - MAX_ROWS} more</p>' if len(skipped) > MAX_ROWS else ""
    return (f"<p>{len(skipped)} file(s) could not be decoded and were left out:</p>"
            + table(["file", "reason"], rows) + more)


def _trust(run: Path, t: dict) -> str:
    """trust.json (seehear.trust) at a glance: headline cards, then the pictures, then the tables."""
    def figure(name: str, heading: str = "") -> str:
        f = run / "trust" / name
        return (f"<h3>{escape(heading)}</h3>" if heading else "") + img(f) if f.is_file() else ""

    cal = t.get("calibration") or {}
    test_cal = cal.get("test") or {}
    rob, adv, fair = t.get("robustness") or {}, t.get("adversarial") or {}, t.get("fairness") or {}
    faith = (t.get("explanations") or {}).get("faithfulness") or {}
    tiles = [("accuracy", pct(t.get("accuracy")))]
    if "ece_after" in test_cal:
        tiles.append((f"ECE before → after T = {num(cal.get('temperature'), 2)}",
                      f"{num(test_cal.get('ece_before'))} → {num(test_cal.get('ece_after'))}"))
    if rob:
        tiles.append(("mean corruption accuracy", pct(rob.get("mean_corruption_accuracy"))))
    if adv.get("results"):
        last = [r for r in adv["results"] if r["attack"] == "pgd"][-1]
        at = f"ε {last['eps_pixels']:g}/255" if "eps_pixels" in last else f"SNR {last.get('snr_db', 0):g} dB"
        tiles.append((f"PGD accuracy at {at}", pct(last["accuracy"])))
    acc = fair.get("accuracy") or {}
    if acc.get("worst_group") is not None:
        tiles.append((f"worst {fair.get('column')}: {acc['worst_group']} (gap {pct(acc.get('gap'))})",
                      pct(acc.get("worst"))))
    if faith.get("deletion_auc_vs_random") is not None:
        tiles.append(("deletion AUC vs random (lower: faithful)", num(faith["deletion_auc_vs_random"], 2)))
    parts = ['<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for k, v in tiles) + "</div>",
        f'<p class="sub">measured on {escape(str(t.get("measured_on", "?")))}, n = {escape(str(t.get("n", "?")))}'
        f"</p>"]
    for note in (cal.get("skipped"), (t.get("explanations") or {}).get("note"), acc.get("note")):
        if note:
            parts.append(f'<p class="muted">{escape(str(note))}</p>')
    parts.append(figure("reliability_before_after.png", "Calibration before and after temperature scaling"))
    parts.append(figure("corruptions.png", "Accuracy under corruption") + figure("adversarial.png", "Under attack"))
    method = (t.get("explanations") or {}).get("method", "")
    for name in ("most_confident", "least_confident", "worst_confusions"):
        parts.append(figure(f"explain_{name}.png", f"Where the model looks ({method}): {name.replace('_', ' ')}"))
    if acc.get("per_group"):
        rows = [[g, pct(v.get("accuracy")), "–".join(pct(c) for c in v["ci95"]) if "ci95" in v else "too few",
                 v.get("n", "")] for g, v in sorted(acc["per_group"].items(), key=lambda kv: kv[1]["accuracy"])]
        by_spk = acc.get("resampled") == "clusters"
        if by_spk:
            for r, (g, v) in zip(rows, sorted(acc["per_group"].items(), key=lambda kv: kv[1]["accuracy"])):
                r.append(v.get("clusters", ""))
        parts.append(f"<h3>Per {escape(str(fair.get('column')))}</h3>"
                     + ('<p class="muted">intervals resample whole speakers (cluster bootstrap)</p>' if by_spk else "")
                     + table(["group", "accuracy", "95% interval", "n"] + (["speakers"] if by_spk else []),
                              rows[:MAX_ROWS], numeric={1, 3, 4}))
    parts.append(figure("embeddings_tsne.png", "Test embeddings (t-SNE)") + figure("embeddings_pca.png", "(PCA)"))
    issues = t.get("label_issues") or {}
    if issues.get("listed"):
        parts.append(f"<h3>Suspected label errors</h3><p class='muted'>{escape(issues.get('method', ''))}</p>"
                     + figure("label_issues.png") + table(
                         ["file", "given", "model says", "p(given)"],
                         [[r["file"], r["given"], r["predicted"], num(r["p_given"])] for r in issues["listed"]],
                         numeric={3}))
    return "".join(parts)


def write_report(run_dir) -> Path:
    """Write run_dir/report.html from whatever the run folder holds; returns its path."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"run folder {run} does not exist; pass the folder that `seehear train` created")
    meta = _load_json(run / "meta.json") or {}
    metrics = _load_json(run / "metrics.json")
    skipped = _load_json(run / "skipped.json")
    split, m = _pick_metrics(metrics)

    title = f"seehear report — {run.resolve().name}"
    task = meta.get("task", "classify")
    if task in ("transcribe", "speakers"):  # the classification cards would read "no metrics" for these
        measured = transcription_section(metrics) if task == "transcribe" else speakers_section(metrics)
        sections = [("Summary", measured + _run_facts(meta))]
        m = None
    else:
        sections = [("Summary", _summary(meta, metrics, split, m))]
    if m:
        sections += [("Per-class results", _per_class(m, (meta.get("data") or {}).get("train_per_class"))),
                     ("Per-group results", _per_group(m))]
    sections.append(("Sample quality", gan_quality_section(_load_json(run / "quality.json"))))
    trust = _load_json(run / "trust.json")
    if isinstance(trust, dict):
        sections.append(("Trust", _trust(run, trust)))
    known = {name for name, _ in PLOTS}
    for name, heading in PLOTS:
        if (run / name).is_file():
            sections.append((heading, img(run / name)))
    for png in sorted(run.glob("*.png")):
        if png.name not in known:
            sections.append((png.stem.replace("_", " ").capitalize(), img(png)))
    sections.append(("Compression", _compression(_load_json(run / "compress.json"))))
    clips = sorted(run.glob("augmented*.wav"))  # augmented training clips (engine/examples.py)
    if clips:
        sections.append(("Augmented training clips", "".join(
            f'<p>{escape(c.name)}<br><audio controls src="{escape(c.name)}"></audio></p>' for c in clips)))
    sections.append(("Skipped files", _skipped(skipped)))
    config = run / "config.yaml"
    if config.is_file():
        sections.append(("Settings", f"<pre>{escape(config.read_text(encoding='utf-8', errors='replace'))}</pre>"))
    versions = meta.get("versions")
    if isinstance(versions, dict) and versions:
        sections.append(("Versions", kv(sorted(versions.items()))))

    body = "".join(f"<section><h2>{escape(h)}</h2>{content}</section>" for h, content in sections if content)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(str(run.resolve()))}</p>{_started(meta.get('start'))}"
            f"{body}</body></html>\n")
    from seehear.atomic import write_text

    return write_text(run / "report.html", page)  # a reader never sees a half-written report

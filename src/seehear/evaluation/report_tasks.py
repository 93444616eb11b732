"""The report.html sections of the tasks other than classification: transcription (WER/CER, per speaker, per
group with intervals, worst examples), speaker verification (EER, per group) and GAN quality."""
from __future__ import annotations

from html import escape

from seehear.evaluation.html import MAX_ROWS, cards, num, pct, table

def transcription_section(metrics) -> str:
    """What a speech-to-text run measured: WER/CER, speed, per speaker, and the worst examples."""
    split, m = next(((k, v) for k, v in (metrics or {}).items() if k in ("test", "valid") and isinstance(v, dict)),
                    (None, None))
    if not m:
        return '<p class="muted">No held-out transcripts were measured.</p>'
    parts = [cards([("WER", pct(m.get("wer"))), ("CER", pct(m.get("cer"))),
                     ("real-time factor", num(m.get("real_time_factor"), 4)), ("decoder", str(m.get("decoder")))]),
             f'<p class="sub">on the {escape(split)} split, {escape(str(m.get("utterances", "?")))} utterances</p>']
    groups = m.get("per_group") or {}
    if groups:
        parts.append(table(["speaker / group", "WER", "CER", "utterances"],
                            [[g, pct(v.get("wer")), pct(v.get("cer")), v.get("utterances")]
                             for g, v in sorted(groups.items(), key=lambda kv: -kv[1].get("wer", 0))[:MAX_ROWS]],
                            numeric={1, 2, 3}))
    parts.append(_wer_fairness(m.get("fairness") or {}))
    ex = m.get("examples") or []
    if ex:
        parts.append("<h3>Worst examples</h3>" + table(["file", "reference", "recognised"],
                                                        [[e.get("key"), e.get("reference"), e.get("hypothesis")]
                                                         for e in ex]))
    return "".join(parts)


def _wer_fairness(f: dict) -> str:
    """WER per group of a column (metrics.json's fairness): interval, utterances, speakers; worst group and gap."""
    w = f.get("wer") or {}
    per = w.get("per_group") or {}
    if not per:
        return ""
    by_spk = w.get("resampled") == "clusters"
    rows = [[g, pct(v.get("wer")), "–".join(pct(c) for c in v["ci95"]) if "ci95" in v else "too few",
             v.get("n", "")] + ([v.get("clusters", "")] if by_spk else [])
            for g, v in sorted(per.items(), key=lambda kv: -kv[1]["wer"])[:MAX_ROWS]]
    head = f"<h3>WER per {escape(str(f.get('column')))}</h3>"
    if w.get("worst_group") is not None:
        ratio = w.get("ratio_to_best")
        head += (f'<p class="sub">worst: {escape(str(w["worst_group"]))} {pct(w.get("worst"))}, '
                 f'{pct(w.get("gap"))} above the best ({escape(str(w.get("best_group")))}'
                 + (f", {ratio:.2f}x" if isinstance(ratio, (int, float)) else "") + ")"
                 + ("; intervals resample whole speakers" if by_spk else "") + "</p>")
    if w.get("note"):
        head += f'<p class="muted">{escape(str(w["note"]))}</p>'
    return head + table(["group", "WER", "95% interval", "utterances"] + (["speakers"] if by_spk else []), rows,
                         numeric={1, 3, 4})


def speakers_section(metrics) -> str:
    """What a speaker-embedding run measured: verification on speakers it did not train on."""
    m = metrics if isinstance(metrics, dict) else {}
    if "eer" not in m:
        return f'<p class="muted">{escape(str(m.get("note", "No verification trials were measured.")))}</p>'
    return (cards([("EER", pct(m.get("eer"))), ("minDCF", num(m.get("min_dcf"))),
                    ("threshold (cosine)", num(m.get("threshold"))), ("speakers", str(m.get("n_speakers")))])
            + f'<p class="sub">on the {escape(str(m.get("evaluated_on")))} split: {escape(str(m.get("n_trials")))} '
              f'trials ({escape(str(m.get("n_target")))} same-speaker) among {escape(str(m.get("n_utterances")))} '
              f'utterances; mean cosine same {escape(num(m.get("mean_target_score")))}, different '
              f'{escape(num(m.get("mean_nontarget_score")))}</p>' + _group_eer(m.get("per_group_eer")))


def _group_eer(g) -> str:
    """EER per group (speakers.fairness_by): the worst first, with its speaker-bootstrap interval."""
    if not isinstance(g, dict) or not g.get("per_group"):
        return ""
    rows = [[name, pct(v.get("eer")), "–".join(pct(x) for x in v["ci95"]) if v.get("ci95") else v.get("note", ""),
             v.get("speakers")] for name, v in sorted(g["per_group"].items(), key=lambda kv: -kv[1].get("eer", -1))]
    head = (f'<h3>EER by {escape(str(g.get("column")))}</h3>' + (
        f'<p class="sub">gap {escape(pct(g["gap"]))} ({escape(str(g["worst_group"]))} worst)</p>' if "gap" in g
        else ""))
    return head + table(["group", "EER", "95% interval", "speakers"], rows, numeric={1, 3})


def gan_quality_section(q) -> str:
    """quality.json of a GAN run (`seehear synthesize RUN --evaluate CLASSIFIER`): generated beside the real floor."""
    if not isinstance(q, dict) or not isinstance(q.get("generated"), dict):
        return ""
    g, r = q["generated"], q.get("real_held_out") or {}
    rows = [[name, num(g.get(k)), num(r.get(k))] for k, name in
            (("frechet", "Fréchet distance (lower is closer)"), ("precision", "precision, k=3 (fidelity)"),
             ("recall", "recall, k=3 (coverage)"))]
    rows += [["classifier accuracy", pct(q.get("gan_test_accuracy")), pct(q.get("real_held_out_accuracy"))],
             ["images", g.get("n"), r.get("n")]]
    return (table(["", "generated", f"real {q.get('held_out_split', 'held-out')} images (floor)"], rows, {1, 2})
            + f"<p>On {escape(str(q.get('features')))} of {escape(str(q.get('classifier')))}; reference: "
              f"{escape(str(g.get('n_reference')))} real training images.</p>")



"""Speech to text: train a CTC transcriber into a run folder, and transcribe files with it.

A transcription run looks like a classification run (config.yaml, meta.json, split.json, skipped.json,
model.safetensors, metrics.json, logs/) plus units.json (the output units) and lm.arpa (a word n-gram from the
training transcripts, for beam search). Long files are cut into speech segments by a voice-activity detector
(seehear.speech.segments), so memory stays flat with length.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from seehear.atomic import write_json
from seehear.config import RunConfig
from seehear.data.cache import decode_waves
from seehear.data.groups import column_values, group_counts, group_names
from seehear.data.sources import load_source
from seehear.data.splits import splits_for
from seehear.engine.base_module import batch_size_for
from seehear.engine.ctc import CTCModule, LengthBatches
from seehear.engine.imbalance import sample_weights
from seehear.engine.trainer import fit_module, set_threads
from seehear.errors import ConfigError, CorruptFileError, DataError
from seehear.models.transcriber import build_transcriber
from seehear.recipes import resolve
from seehear.speech.recognize import LoadedTranscriber, load_transcriber
from seehear.speech.tuning import tune_decoding
from seehear.speech.units import learn_units, load_units, normalize_text
from seehear.tasks.base import Prepared, Task

load = load_transcriber  # seehear.tasks.transcribe.load(run): the name users of this module know


class Transcribe(Task):
    name = "transcribe"

    def load(self, data, label_pattern, modality="auto"):
        source = load_source(data, label_pattern=label_pattern, modality="audio")
        if not any(r.transcript is not None and normalize_text(r.transcript) for r in source.records):
            raise DataError(f"{data} has no transcripts: speech to text needs a Kaldi dir (wav.scp + text) or a "
                            f"manifest with path and transcript columns")
        return source

    def resolve(self, source, user, overrides):
        from seehear.recipes import deep_merge

        probe = RunConfig.from_dict(deep_merge({"model": {"name": "conformer_ctc"}}, user)).override(list(overrides))
        if probe.model.init_from:  # transfer: the source encoder's model and features, unless the user set them
            from seehear.engine.transfer import check_speech_encoder, only_unset, source_defaults, source_meta

            run = probe.model.init_from
            src = source_defaults(check_speech_encoder(source_meta(run), run), "transcribe")
            user = deep_merge(only_unset(src, user, overrides), user)
            probe = RunConfig.from_dict(deep_merge({"model": {"name": "conformer_ctc"}}, user)).override(
                list(overrides))
        # models named *_stream read left to right; their recipe keeps features streamable (no utterance stats)
        recipe = "asr-stream" if probe.model.name.endswith("_stream") else "asr"
        cfg = resolve(recipe, user, list(overrides))
        cfg.modality = "audio"
        _check_sampler(cfg)
        return cfg, recipe

    def prepare(self, source, cfg, out, resume, progress):
        records = [r for r in source.records if r.transcript is not None and normalize_text(r.transcript)]
        # Kaldi text files are read with errors="replace": U+FFFD marks bytes that were not UTF-8
        bad_text = [r for r in records if "\ufffd" in r.transcript]
        records = [r for r in records if "\ufffd" not in r.transcript]
        groups = _groups(records, cfg)  # a column no record has fails before anything is decoded
        splits = splits_for(records, cfg.data, cfg.train.seed, out / "split.json", resume)
        tc = cfg.transcribe
        waves = decode_waves(records, cfg.audio.sample_rate, max_seconds=tc.max_seconds,
                             workers=cfg.data.workers, progress=progress)
        skipped = [tuple(s) for s in waves.skipped] + [
            (r.key, "transcript is not UTF-8 text (convert the text file, e.g. with iconv)") for r in bad_text]
        row = {rec: i for i, rec in enumerate(waves.keep)}
        part = {name: [row[i] for i in idx if i in row] for name, idx in splits.items()}
        if not part.get("train"):
            raise DataError(f"no training recordings could be decoded from {source.root} ({len(skipped)} "
                            f"skipped; see {out / 'skipped.json'})")
        train_texts = [records[waves.keep[i]].transcript for i in part["train"]]
        units = load_units(out) if resume else learn_units(train_texts, tc.units, tc.vocab_size, out)
        units.save(out)
        unknown = sorted({c for i in part.get("test", []) + part.get("valid", [])
                          for c in units.unknown_chars(records[waves.keep[i]].transcript)})
        _write_lm(out, train_texts, cfg)
        net = build_transcriber(cfg, units.tokens)
        transfer = None
        if cfg.model.init_from:  # a speech encoder (pretrained or transcription run) starts this one
            from seehear.engine.transfer import init_encoder, pretrain_overlap

            transfer = init_encoder(net.acoustic, cfg.model.init_from, cfg)
            measured = part.get("test") or part.get("valid", [])
            note = pretrain_overlap(cfg.model.init_from, [records[waves.keep[i]].key for i in measured])
            if note:
                print(f"warning: {note}", file=sys.stderr)
                transfer["warning"] = note
        meta = {"modality": "audio", "labels": [], "units": {"kind": units.kind, "count": len(units)},
                "input": {"modality": "audio", "sample_rate": cfg.audio.sample_rate, "max_seconds": tc.max_seconds},
                "model": {"streaming": hasattr(net.acoustic, "step")},
                "data": {"counts": {k: len(v) for k, v in part.items()},
                         "hours": round(float(waves.lengths.sum()) / cfg.audio.sample_rate / 3600, 3),
                         "unknown_characters_in_test": unknown}}
        train_groups = None
        if groups["sampling"] is not None:
            names = group_names([groups["sampling"][waves.keep[i]] for i in part["train"]])
            index = {g: k for k, g in enumerate(sorted(set(names)))}
            train_groups = torch.tensor([index[g] for g in names], dtype=torch.long)
            meta["data"]["train_per_group"] = {"column": cfg.train.group_by or "group", "counts": group_counts(names)}
        if transfer:
            meta["transfer"] = transfer
        return Prepared(net, meta, skipped, {"records": records, "waves": waves, "part": part, "units": units,
                                              "unknown": unknown, "train_groups": train_groups,
                                              "fairness": groups["fairness"]})

    def fit(self, p, cfg, out, resume, progress):
        waves, part, records = p.state["waves"], p.state["part"], p.state["records"]
        targets = [p.state["units"].encode(records[k].transcript) for k in waves.keep]
        bs = batch_size_for(len(part["train"]), cfg.train.batch_size, floor=4)
        loader = LengthBatches(waves, part["train"], targets, bs, shuffle=True, seed=cfg.train.seed,
                               sortagrad=cfg.train.sortagrad,
                               sample_weights=draw_weights(cfg, p.state.get("train_groups"), len(part["train"])))
        val = LengthBatches(waves, part["valid"], targets, bs, shuffle=False) if part.get("valid") else None
        module = CTCModule(p.model, cfg, steps_per_epoch=len(loader))
        info = fit_module(module, cfg, loader, val, out, resume=resume, progress=progress, monitor="val_uer",
                          monitor_mode="min")
        return {**info, "batch_size": bs, "ctc": module.plateau.record()}

    def measure(self, p, cfg, out):
        from seehear.engine.checkpoint import read_json
        from seehear.evaluation.transcripts import transcript_metrics

        waves, part, records = p.state["waves"], p.state["part"], p.state["records"]
        split = "test" if part.get("test") else "valid"
        rows = part.get(split, [])
        metrics: dict = {}
        meta = read_json(out / "meta.json")
        loaded = LoadedTranscriber(out, p.model, p.state["units"], cfg, meta)
        tune_rows = part.get("valid", []) if split == "test" else []  # never tuned on what is measured
        if not cfg.transcribe.tune_decoding:
            p.state["decoding"] = {"skipped": "transcribe.tune_decoding is off"}
        else:
            p.state["decoding"] = tune_decoding(loaded, [waves.wave(i) for i in tune_rows],
                                                [records[waves.keep[i]].transcript for i in tune_rows])
        if "tuned" in p.state["decoding"]:
            meta = {**meta, "decoding": p.state["decoding"]}
            loaded = LoadedTranscriber(out, p.model, p.state["units"], cfg, meta)
        if rows:
            t0 = time.perf_counter()
            hyps = loaded.recognize([waves.wave(i) for i in rows])
            seconds = float(waves.lengths[rows].sum()) / cfg.audio.sample_rate
            recs = [records[waves.keep[i]] for i in rows]
            m = transcript_metrics([r.transcript for r in recs], [h.text for h in hyps], [r.group for r in recs],
                                   [r.key for r in recs])
            m.update(decoder=loaded.decoder_name, real_time_factor=round((time.perf_counter() - t0) / seconds, 4),
                     unknown_characters=p.state["unknown"])
            if p.state.get("fairness"):
                m["fairness"] = _fairness(recs, [waves.keep[i] for i in rows], [h.text for h in hyps],
                                          *p.state["fairness"], seed=cfg.train.seed)
            metrics[split] = m
        return split, metrics

    def finished(self, p, metrics):
        return {"decoding": p.state.get("decoding")}


TASK = Transcribe()


def draw_weights(cfg: RunConfig, groups: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Each training utterance's weight in the draw that redraws the batches every epoch; None keeps the batches
    fixed. group_balanced: 1 / the utterance's group count; train.batches=redrawn alone: equal weights."""
    if groups is not None:
        return sample_weights(torch.zeros_like(groups), 1, "group_balanced", groups)
    return torch.ones(n, dtype=torch.double) if cfg.train.batches == "redrawn" else None


def _check_sampler(cfg: RunConfig) -> None:
    """Transcription has no classes: of the samplers only none and group_balanced mean something here."""
    t = cfg.train
    if t.sampler == "group_class_balanced":
        raise ConfigError("train.sampler=group_class_balanced balances (group, class) pairs, and transcription has no "
                          "classes: use train.sampler=group_balanced with train.group_by=COLUMN")
    if t.sampler in ("balanced", "sqrt"):
        raise ConfigError(f"train.sampler={t.sampler} draws by class, and transcription has no classes: use "
                          f"train.sampler=group_balanced with train.group_by=COLUMN (gender, age, a manifest column), "
                          f"or none")
    if t.group_by and t.sampler != "group_balanced":
        raise ConfigError(f"train.group_by={t.group_by} is only used by train.sampler=group_balanced (train.sampler "
                          f"is {t.sampler}); for WER per group without it set transcribe.fairness_by={t.group_by}")


def _groups(records, cfg: RunConfig) -> dict:
    """Each record's group for train.sampler=group_balanced (train.group_by, else the speaker) and the column WER
    is reported by (transcribe.fairness_by, else train.group_by): None where unused."""
    t = cfg.train
    sampling = column_values(records, t.group_by or "group", "train.group_by") \
        if t.sampler == "group_balanced" else None
    column = cfg.transcribe.fairness_by or t.group_by
    fairness = None
    if column:
        fairness = (column, sampling if column == t.group_by and sampling is not None else
                    column_values(records, column, "transcribe.fairness_by"))
    return {"sampling": sampling, "fairness": fairness}


def _fairness(recs, idx: list[int], hyps: list[str], column: str, values: list, seed: int) -> dict:
    """WER per group of `column` on the measured utterances, with intervals that resample whole speakers (unless
    the groups are the speakers themselves, or some utterance has no speaker: then utterances)."""
    from seehear.evaluation.transcripts import utterance_errors
    from seehear.trust.fairness import wer_by_group

    errors, words = utterance_errors([r.transcript for r in recs], hyps)
    speakers = [r.group for r in recs] if column not in ("group", "speaker") and all(r.group for r in recs) \
        else None
    return wer_by_group(errors, words, group_names([values[i] for i in idx]), column, speakers, seed=seed)


def _write_lm(out: Path, texts: list[str], cfg: RunConfig) -> None:
    """RUN/lm.arpa: a word n-gram of the training transcripts (+ transcribe.lm_text), for beam search."""
    from seehear.speech.ngram import build_arpa

    lines = [normalize_text(t) for t in texts]
    if cfg.transcribe.lm_text:
        f = Path(cfg.transcribe.lm_text).expanduser()
        if not f.is_file():
            raise DataError(f"transcribe.lm_text {f} does not exist")
        try:
            lines += [normalize_text(t) for t in f.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError:
            raise DataError(f"transcribe.lm_text {f} is not UTF-8 text") from None
    build_arpa([t for t in lines if t], out / "lm.arpa", order=cfg.transcribe.lm_order)


def evaluate(run, data, *, out=None, decoder: str | None = None, progress: bool = True) -> dict:
    """WER/CER of a transcription run on other data with transcripts; writes metrics.json to OUT
    (default RUN/eval/NAME)."""
    from seehear.evaluation.transcripts import transcript_metrics

    t = load_transcriber(run, decoder)
    set_threads(t.cfg)
    records = [r for r in load_source(data, modality="audio").records if r.transcript is not None]
    if not records:
        raise DataError(f"{data} has no transcripts to measure against (a Kaldi dir with a text file, or a "
                        f"manifest with a transcript column)")
    waves = decode_waves(records, t.cfg.audio.sample_rate, max_seconds=None, workers=t.cfg.data.workers,
                         progress=progress)
    t0 = time.perf_counter()
    hyps = t.recognize([waves.wave(i) for i in range(len(waves))])
    recs = [records[k] for k in waves.keep]
    m = transcript_metrics([r.transcript for r in recs], [h.text for h in hyps], [r.group for r in recs],
                           [r.key for r in recs])
    seconds = float(waves.lengths.sum()) / t.cfg.audio.sample_rate
    m.update(decoder=t.decoder_name, real_time_factor=round((time.perf_counter() - t0) / max(seconds, 1e-9), 4),
             skipped=[list(s) for s in waves.skipped],
             unknown_characters=sorted({c for r in recs for c in t.units.unknown_chars(r.transcript)}))
    out = Path(out) if out else Path(run) / "eval" / Path(str(data)).resolve().name
    write_json(out / "metrics.json", m)
    m["out"] = str(out)
    return m


def transcribe(run, inputs, *, decoder: str | None = None, loaded: LoadedTranscriber | None = None,
               hotwords: list[str] | None = None) -> list[dict]:
    """Transcripts of audio files, one dict each: file, text, segments (start, end, text, words), seconds,
    compute_seconds; or file, error for a file that cannot be read. Silence gives an empty text. hotwords: words
    the beam search favours by transcribe.hotword_boost (instead of the run's transcribe.hotwords)."""
    from seehear.data.decode import audio_info

    t = loaded or load_transcriber(run, decoder, hotwords)
    set_threads(t.cfg)
    paths = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(p) for p in inputs]
    sr, limit = t.cfg.audio.sample_rate, t.cfg.transcribe.max_seconds
    results = []
    for path in paths:
        t0 = time.perf_counter()
        try:
            info = audio_info(path)
            seconds = info["duration"]
            segments = list(_transcribe_segments(t, _pieces(path, seconds, sr, limit)))
        except CorruptFileError as e:
            results.append({"file": path, "error": str(e)})
            continue
        row = {"file": path, "text": " ".join(s["text"] for s in segments if s["text"]), "segments": segments,
               "seconds": round(seconds, 3), "compute_seconds": round(time.perf_counter() - t0, 4)}
        notes = []
        if info["sample_rate"] != sr:
            notes.append(f"resampled from {info['sample_rate']} Hz to the model's {sr} Hz")
        if info["channels"] > 1:
            notes.append(f"{info['channels']} channels mixed to mono")
        results.append({**row, "notes": notes} if notes else row)
    return results


def _pieces(path: str, seconds: float, sr: int, limit: float):
    """What to recognise: a file up to transcribe.max_seconds whole (as in training: VAD cuts would clip word
    edges; on speechocean762 they cost ~7 WER points), unless the VAD hears no speech in it at all (then nothing:
    silence gives an empty transcript); a longer file as VAD segments of at most max_seconds, read in blocks."""
    from seehear.speech.segments import Segment, read_blocks, speech_segments

    vad = speech_segments(path, sample_rate=sr, max_seconds=limit)
    if seconds > limit:
        yield from vad
        return
    if next(vad, None) is None:
        return
    whole = np.concatenate(list(read_blocks(path, sample_rate=sr))) if seconds > 0 else np.zeros(0, np.float32)
    yield Segment(0.0, len(whole) / sr, whole)


def _transcribe_segments(t: LoadedTranscriber, segments, batch: int = 8):
    """Recognise VAD segments a few at a time (memory stays flat), shifting word times to the file's clock."""
    pending = []

    def flush():
        hyps = t.recognize([torch.from_numpy(np.ascontiguousarray(s.samples)) for s in pending])
        for s, h in zip(pending, hyps):
            yield {"start": round(s.start, 3), "end": round(s.end, 3), "text": h.text,
                   "words": [{**w, "start": round(s.start + w["start"], 3), "end": round(s.start + w["end"], 3)}
                             for w in h.words]}
        pending.clear()

    for seg in segments:
        pending.append(seg)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()

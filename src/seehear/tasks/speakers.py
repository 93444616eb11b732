"""Speaker embeddings (task: speakers): train, then enroll, verify and identify voices.

Training is speaker classification with an additive angular margin (AAM-softmax, Deng et al. 2019 / ArcFace, as in
ECAPA-TDNN) on random crops of cfg.speakers.segment_seconds; the classifier's rows are the speaker prototypes. What
is kept is `backbone.embed()`: a voice is the (L2-normalised) embedding of a whole utterance, compared by cosine.
The run is measured on speakers it never heard (the data's test split, else a held-out share of the speakers).

    import seehear, seehear.tasks.speakers as spk
    seehear.train("data/", "runs/voices", task="speakers")
    spk.enroll("runs/voices", "alice", ["a1.wav", "a2.wav"])
    spk.verify("runs/voices", "alice", "new.wav")  # {"speaker", "score", "accepted", "threshold"}
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seehear.atomic import atomic_write, write_json
from seehear.config import RunConfig
from seehear.data.decode import audio_info, decode_audio, float_to_pcm, pcm_to_float
from seehear.data.groups import column_values, group_counts, group_names
from seehear.data.records import Record
from seehear.data.sources import load_source
from seehear.engine import run_folder as rf
from seehear.engine.base_module import batch_size_for
from seehear.engine.checkpoint import read_json
from seehear.engine.imbalance import GROUP_SAMPLERS, sample_weights
from seehear.engine.speaker import Segments, SpeakerModule
from seehear.engine.trainer import fit_module
from seehear.errors import ConfigError, DataError, RunError
from seehear.evaluation.verification import group_eer, verification_metrics
from seehear.models.recognizer import build_recognizer, input_spec
from seehear.recipes import resolve
from seehear.tasks.base import Prepared, Task

MIN_SECONDS = 1.0  # shorter utterances are repeated up to this (the TDNN needs some context)
MAX_SECONDS = 30.0  # longer ones are cut to their middle this long: bounded memory and time per file
MAX_NONTARGET = 200_000  # different-speaker trials sampled at most (fixed seed); all same-speaker pairs are kept


# --- data ----------------------------------------------------------------------------------------------------------

def _speaker_source(data, pattern: str | None, source=None):
    """Records with a speaker each: Record.group (utt2spk, a speaker column or group), else the label (a folder per
    speaker). A --label-pattern with only (?P<speaker>...) is accepted: the speaker is then the label."""
    if pattern and "(?P<label>" not in pattern and "(?P<speaker>" in pattern:
        pattern = pattern.replace("(?P<speaker>", "(?P<label>")
    source = source or load_source(data, label_pattern=pattern)
    if source.modality != "audio":
        raise DataError(f"{data} holds {source.modality} files; speaker embeddings need audio")
    recs = [r for r in source.records if (r.group or r.label)]
    if not recs:
        raise DataError(f"{data}: no speaker names found; use a Kaldi dir with utt2spk, a manifest with a speaker "
                        f"column, a folder per speaker, or a pattern with (?P<speaker>...)")
    return source, recs, [str(r.group or r.label) for r in recs]


def _split_speakers(recs, spk, cfg: RunConfig) -> tuple[list[int], list[int], str]:
    """Indices of training and evaluation utterances; evaluation speakers are unseen when the data allows."""
    test = [i for i, r in enumerate(recs) if r.split == "test"]
    if test and len(test) < len(recs):
        return [i for i, r in enumerate(recs) if r.split != "test"], test, "test"
    names = sorted(set(spk))
    if len(names) < 4:
        raise DataError(f"{len(names)} speaker(s) found; speaker training needs at least 4 (2 to learn from, 2 held "
                        f"out to measure on)")
    rng = np.random.default_rng(cfg.train.seed)
    n_eval = min(len(names) - 2, max(2, round(cfg.data.test_fraction * len(names))))
    held = set(rng.permutation(names)[:n_eval].tolist())
    return ([i for i, s in enumerate(spk) if s not in held], [i for i, s in enumerate(spk) if s in held],
            "held-out speakers")


def _groups(recs, cfg: RunConfig) -> tuple[str | None, list | None]:
    """(column, each record's group) for group-balanced sampling (train.group_by) and per-group EER
    (speakers.fairness_by, else train.group_by); (None, None) when neither is set."""
    t = cfg.train
    if t.sampler in GROUP_SAMPLERS and not t.group_by:
        raise ConfigError(f"train.sampler={t.sampler} needs train.group_by: the column whose groups are drawn evenly "
                          f"(gender, age, or a manifest column)")
    col = cfg.speakers.fairness_by or t.group_by
    if not col:
        return None, None
    option = "speakers.fairness_by" if cfg.speakers.fairness_by else "train.group_by"
    return col, column_values(recs, col, option)


def _bound(w: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """At least MIN_SECONDS (repeated), at most MAX_SECONDS (the middle), as int16."""
    lo, hi = int(MIN_SECONDS * sample_rate), int(MAX_SECONDS * sample_rate)
    if len(w) > hi:
        w = w[(len(w) - hi) // 2:][:hi]
    if len(w) < lo:
        w = w.repeat(math.ceil(lo / max(1, len(w))))[:lo]
    return float_to_pcm(w)  # int16 stays a view into the decoded set's storage: no copy


def _read_wave(path: str, sample_rate: int) -> torch.Tensor:
    """A file as int16 [S], mono, resampled, bounded in length (_bound); of a long file only the middle
    MAX_SECONDS are read."""
    seconds = audio_info(str(path))["duration"]
    n = int(MAX_SECONDS * sample_rate) if seconds > MAX_SECONDS else None
    return _bound(decode_audio(Record(str(path)), sample_rate=sample_rate, num_samples=n, crop="center"),
                  sample_rate)


def _read_all(paths: list[str], sample_rate: int, workers: int = 0):
    """Decode in threads with the data layer (bad files skipped and listed); returns (waves, kept indices,
    skipped (path, reason))."""
    from seehear.data.cache import decode_waves

    d = decode_waves([Record(str(p)) for p in paths], sample_rate, workers=workers, progress=False)
    return [_bound(d.wave(j), sample_rate) for j in range(len(d))], d.keep, d.skipped


# --- training --------------------------------------------------------------------------------------------------------

class Speakers(Task):
    name = "speakers"

    def load(self, data, label_pattern, modality="auto"):
        return _speaker_source(data, label_pattern)[0]

    def resolve(self, source, user, overrides):
        cfg = resolve("speakers", user, list(overrides))
        cfg.modality = "audio"
        cfg.audio.clip_seconds = cfg.speakers.segment_seconds  # the model's fixed-size input is a training crop
        if "embed_dim" not in cfg.model.kwargs:
            cfg.model.kwargs["embed_dim"] = cfg.speakers.embed_dim
        return cfg, "speakers"

    def prepare(self, source, cfg, out, resume, progress):
        _, recs, spk = _speaker_source(source.root, cfg.data.label_pattern, source)
        tr_idx, ev_idx, evaluated_on = _split_speakers(recs, spk, cfg)
        group_col, group_of = _groups(recs, cfg)  # a bad column fails before anything is decoded
        sr = cfg.audio.sample_rate
        waves, keep, skipped = _read_all([recs[i].path for i in tr_idx + ev_idx], sr, cfg.data.workers)
        n_tr = len(tr_idx)
        tr_w = [w for w, k in zip(waves, keep) if k < n_tr]
        tr_spk = [spk[tr_idx[k]] for k in keep if k < n_tr]
        ev_w = [w for w, k in zip(waves, keep) if k >= n_tr]
        ev_spk = [spk[ev_idx[k - n_tr]] for k in keep if k >= n_tr]
        if group_of is not None:
            kept_group = [group_of[(tr_idx + ev_idx)[k]] for k in keep]
            tr_grp, ev_grp = kept_group[:len(tr_w)], kept_group[len(tr_w):]
        names = sorted(set(tr_spk))
        if len(names) < 2:
            raise DataError(f"{source.root}: {len(names)} training speaker(s) could be decoded ({len(skipped)} "
                            f"files skipped); speaker training needs at least 2")
        lab = {n: i for i, n in enumerate(names)}
        y = torch.tensor([lab[s] for s in tr_spk], dtype=torch.long)
        net = build_recognizer(cfg, names, "audio")
        if not hasattr(net.backbone, "embed") or not hasattr(net.backbone, "classifier"):
            raise ConfigError(f"model {cfg.model.name} has no embed(); speaker training needs ecapa_small or "
                              f"xvector")
        write_json(out / "split.json", {"train": [recs[i].key for i in tr_idx],
                                        "test": [recs[i].key for i in ev_idx]})
        meta = {"modality": "audio", "labels": names, "input": input_spec(cfg, "audio"), "norm_stats": None,
                "data": {"counts": {"train": len(tr_w), "test": len(ev_w)}}}
        weights = None
        if cfg.train.sampler != "none":  # balanced/sqrt: by speaker; group_*: by group_col
            codes = None
            if group_of is not None:
                names_g = group_names(tr_grp)
                index = {n: i for i, n in enumerate(sorted(set(names_g)))}
                codes = torch.tensor([index[n] for n in names_g])
                meta["data"]["train_per_group"] = {"column": group_col, "counts": group_counts(tr_grp)}
            weights = sample_weights(y, len(names), cfg.train.sampler, codes)
        return Prepared(net, meta, skipped, {"train": (tr_w, y), "eval": (ev_w, ev_spk), "weights": weights,
                                              "eval_groups": (group_col, ev_grp) if group_of is not None else None,
                                              "evaluated_on": evaluated_on, "names": names})

    def fit(self, p, cfg, out, resume, progress):
        tr_w, y = p.state["train"]
        bs = batch_size_for(len(y), cfg.train.batch_size)
        loader = Segments(tr_w, y, int(round(cfg.speakers.segment_seconds * cfg.audio.sample_rate)), bs,
                          seed=cfg.train.seed, sample_weights=p.state["weights"])
        module = SpeakerModule(p.model, cfg, steps_per_epoch=len(loader))
        info = fit_module(module, cfg, loader, None, out, resume=resume, progress=progress, monitor="train_loss",
                          monitor_mode="min")
        return {**info, "batch_size": bs}

    def measure(self, p, cfg, out):
        ev_w, ev_spk = p.state["eval"]
        evaluated_on = p.state["evaluated_on"]
        metrics: dict = {"evaluated_on": evaluated_on}
        if len(set(ev_spk)) >= 2:
            emb = embed_waves(p.model, ev_w)
            metrics.update(verification_metrics(emb, ev_spk, max_nontarget=MAX_NONTARGET, seed=cfg.train.seed))
            metrics["speakers_seen_in_training"] = len(set(ev_spk) & set(p.state["names"]))
            if p.state["eval_groups"] is not None:
                col, groups = p.state["eval_groups"]
                metrics["per_group_eer"] = {"column": col, **group_eer(emb, ev_spk, groups, seed=cfg.train.seed)}
        else:
            metrics["note"] = "fewer than 2 evaluation speakers: no verification trials"
        return evaluated_on, metrics

    def finished(self, p, metrics):
        return {"speakers": {"threshold": metrics.get("threshold"), "train_speakers": len(p.state["names"])}}


TASK = Speakers()


# --- embeddings of files -----------------------------------------------------------------------------------------

@torch.inference_mode()
def embed_waves(net, waves: list[torch.Tensor]) -> np.ndarray:
    """L2-normalised embeddings [N, D] of whole utterances (int16 or float [S] each), one forward per utterance."""
    net.eval()
    out = []
    for w in waves:
        x = pcm_to_float(w)
        e = net.backbone.embed(net.frontend(x[None]))
        out.append(F.normalize(e.float(), dim=1)[0].numpy())
    return np.stack(out) if out else np.zeros((0, net.backbone.embed_dim), dtype=np.float32)


def _load(run) -> rf.LoadedRun:
    loaded = rf.load_run(run)
    if loaded.cfg.task != "speakers":
        raise RunError(f"{run} is a {loaded.cfg.task} run, not a speaker-embedding run; train one with "
                       f"`seehear train DATA --out RUN --task speakers`")
    return loaded


def _files_embeddings(loaded: rf.LoadedRun, files) -> np.ndarray:
    paths = [str(files)] if isinstance(files, (str, Path)) else [str(f) for f in files]
    if not paths:
        raise DataError("no audio files given")
    torch.set_num_threads(loaded.cfg.train.threads or os.cpu_count() or 1)
    # One bad file is an error (CorruptFileError, one line naming it): an enrolment must not silently lose files.
    return embed_waves(loaded.model, [_read_wave(p, loaded.cfg.audio.sample_rate) for p in paths])


def embed(run, files) -> np.ndarray:
    """Normalised speaker embeddings [N, D] of audio files (whole utterances)."""
    return _files_embeddings(_load(run), files)


# --- enrolled speakers: RUN/speakers.safetensors (one vector per name) + RUN/speakers.json (files, dates) ---------

def _store(run) -> tuple[Path, Path]:
    return Path(run) / "speakers.safetensors", Path(run) / "speakers.json"


def enrolled(run) -> dict[str, dict]:
    """Name -> {files, utterances, enrolled} of every enrolled speaker."""
    idx = _store(run)[1]
    return read_json(idx) if idx.is_file() else {}


def _vectors(run) -> dict[str, np.ndarray]:
    vec = _store(run)[0]
    if not vec.is_file():
        return {}
    from safetensors.numpy import load_file

    try:
        return load_file(str(vec))
    except Exception as e:  # truncated or overwritten by something else: say so, never a traceback
        raise RunError(f"{vec} is damaged ({type(e).__name__}); enroll the speakers again "
                       f"(their files are listed in {_store(run)[1].name})") from None


def enroll(run, name: str, files) -> dict:
    """Store the mean of the normalised embeddings of FILES as speaker NAME (replacing an earlier one)."""
    if not isinstance(name, str) or not re.fullmatch(r"[^\s/\\][^/\\\n]{0,99}", name) or name != name.strip():
        raise DataError(f"speaker name {name!r} must be 1-100 characters, no slashes, no leading/trailing spaces")
    loaded = _load(run)
    emb = _files_embeddings(loaded, files)
    v = emb.mean(axis=0)
    v = (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
    from safetensors.numpy import save_file

    vec_path, idx_path = _store(run)
    vecs, idx = _vectors(run), enrolled(run)
    vecs[name] = v
    paths = [str(files)] if isinstance(files, (str, Path)) else [str(f) for f in files]
    idx[name] = {"files": [str(Path(p).resolve()) for p in paths], "utterances": len(paths), "enrolled": rf.now()}
    atomic_write(vec_path, lambda tmp: save_file(vecs, tmp))  # never half a file
    write_json(idx_path, idx)
    return {"speaker": name, **idx[name]}


def _threshold(loaded: rf.LoadedRun) -> float:
    if loaded.cfg.speakers.threshold is not None:
        return float(loaded.cfg.speakers.threshold)
    t = (loaded.meta.get("speakers") or {}).get("threshold")
    if t is None:
        raise RunError(f"{loaded.run_dir} has no verification threshold (it was not measured on held-out speakers); "
                       f"set one with speakers.threshold in its config.yaml")
    return float(t)


def verify(run, name: str, file) -> dict:
    """Is FILE spoken by enrolled speaker NAME? Cosine score against the enrolled vector, and the decision."""
    loaded = _load(run)
    vecs = _vectors(run)
    if name not in vecs:
        known = ", ".join(sorted(vecs)[:20]) or "none yet"
        raise DataError(f"speaker {name!r} is not enrolled in {run} (enrolled: {known}); enroll with "
                        f"`seehear speakers enroll {run} {name} FILES...`")
    e = _files_embeddings(loaded, [file])[0]
    score = float(np.dot(e, vecs[name]))
    thr = _threshold(loaded)
    return {"speaker": name, "file": str(file), "score": round(score, 4), "accepted": score >= thr,
            "threshold": round(thr, 4)}


def identify(run, file, top_k: int = 3) -> list[dict]:
    """The enrolled speakers closest to FILE, best first: [{speaker, score, accepted}]."""
    loaded = _load(run)
    vecs = _vectors(run)
    if not vecs:
        raise DataError(f"no speakers enrolled in {run}; enroll with `seehear speakers enroll {run} NAME FILES...`")
    e = _files_embeddings(loaded, [file])[0]
    thr = _threshold(loaded)
    ranked = sorted(((float(np.dot(e, v)), n) for n, v in vecs.items()), reverse=True)[:max(1, int(top_k))]
    return [{"speaker": n, "score": round(s, 4), "accepted": s >= thr} for s, n in ranked]


def describe(run) -> str:
    """One line on what a speaker run measured (for `seehear speakers list`)."""
    m = read_json(Path(run) / "metrics.json") if (Path(run) / "metrics.json").is_file() else {}
    if "eer" not in m:
        return "not measured"
    return f"EER {100 * m['eer']:.2f}% minDCF {m['min_dcf']:.3f} on {m['n_speakers']} unseen speakers"


__all__ = ["train", "enroll", "verify", "identify", "embed", "enrolled", "embed_waves"]

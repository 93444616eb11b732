"""Few-shot classes for a trained classification run, without retraining (`seehear fewshot RUN enroll CLASS FILE...`).

A class is its prototype (Snell et al. 2017): the mean of the L2-normalised penultimate embeddings of its examples
(the input of the classifier's last linear layer, `seehear.trust.embeddings.embed`), normalised again. Embeddings
are centred on the training split's mean before normalising (SimpleShot's "CL2N", Wang et al. 2019): after a ReLU
all features are positive, every cosine is near 1, and an unseen class looks like the nearest trained one. At the first
enrolment the run's own classes get prototypes too, from its training split (split.json + the data folder named in
meta.json), so that old and new classes are compared the same way.

The rule `predict` follows: a run with no few-shot class predicts with its classifier, as always. Once any few-shot
class exists, it predicts by the nearest prototype by cosine similarity, over all classes; the probabilities shown
are softmax(SCALE * cosine), a similarity ranking and not calibrated like the classifier's. evaluate, export and
serve keep using the classifier (the ONNX graph has no prototypes).

`evaluate_fewshot` (`seehear fewshot RUN evaluate DATA --ways 5 --shots 1 5`) measures the same rule on episodes of
classes the run may never have seen: the few-shot benchmarks call it (bench/fewshot_*.py).

Files: RUN/prototypes.safetensors (one row per class) and RUN/prototypes.json (labels, which are few-shot, how many
examples each), both written atomically, the tensors first, so a reader never sees labels without their rows.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from seehear.atomic import read_json, write_json
from seehear.data.cache import decode_all
from seehear.data.sources import list_files, load_source
from seehear.engine import run_folder as rf
from seehear.engine.checkpoint import load_weights, save_weights
from seehear.engine.episodes import by_class, check_episodes, sample_episode
from seehear.engine.episodic import prototypical_loss
from seehear.errors import DataError, InputMismatchError, RunError
from seehear.trust.embeddings import embed

WEIGHTS, INDEX = "prototypes.safetensors", "prototypes.json"
SCALE = 10.0  # cosine → logits for the displayed probabilities (a fixed, documented temperature of 0.1)
CHUNK = 512


def embeddings(model, x: torch.Tensor, center: torch.Tensor | None = None) -> torch.Tensor:
    """[N, D] penultimate embeddings of raw inputs (uint8 images / int16 waves), centred and L2-normalised."""
    e = embed(model, x).float()
    return F.normalize(e - center if center is not None else e, dim=1)


def prototype(emb: torch.Tensor) -> torch.Tensor:
    return F.normalize(emb.mean(0), dim=0)


def load_prototypes(run_dir) -> dict | None:
    """{labels, fewshot, counts, vectors [K, D]} of a run with few-shot classes, else None."""
    run_dir = Path(run_dir)
    if not (run_dir / INDEX).is_file():
        return None
    index = read_json(run_dir / INDEX)
    w = load_weights(run_dir / WEIGHTS)
    vectors = w["prototypes"]
    if len(vectors) != len(index["labels"]):
        raise RunError(f"{run_dir}/{WEIGHTS} does not match {INDEX} ({len(vectors)} rows, {len(index['labels'])} "
                       f"labels); enrol the few-shot classes again")
    return {**index, "vectors": vectors, "center": w["center"]}


def prototype_probs(model, x: torch.Tensor, protos: dict) -> torch.Tensor:
    """[N, K] softmax(SCALE * cosine) to each prototype, in protos['labels'] order."""
    if not len(x):
        return torch.zeros(0, len(protos["labels"]))
    sims = embeddings(model, x, protos["center"]) @ protos["vectors"].float().T
    return torch.softmax(SCALE * sims, dim=1)


def _decoded_embeddings(loaded: rf.LoadedRun, records, progress: bool = False):
    """(kept record indices, raw penultimate embeddings, skipped) for records decoded CHUNK at a time."""
    kept, embs, skipped = [], [], []
    for start in range(0, len(records), CHUNK):
        d = decode_all(records[start:start + CHUNK], loaded.cfg, loaded.modality, workers=loaded.cfg.data.workers,
                       progress=progress)
        kept += [start + i for i in d.keep]
        skipped += d.skipped
        if d.keep:
            embs.append(embed(loaded.model, d.x).float())
    return kept, torch.cat(embs) if embs else torch.zeros(0, 0), skipped


def training_embeddings(loaded: rf.LoadedRun, why: str = "the first few-shot class needs the run's training data, "
                                                          "to give its own classes prototypes too"):
    """(records, kept record indices, raw embeddings) of the run's training split (split.json + the data folder
    named in meta.json), for its classes' prototypes and for the mean that embeddings are centred on."""
    data = (loaded.meta.get("data") or {}).get("source")
    split = loaded.run_dir / "split.json"
    if not data or not Path(data).exists() or not split.is_file():
        raise DataError(f"{why}, but {data or 'it'} is not there any more; put it back where it was trained")
    source = load_source(data, label_pattern=loaded.cfg.data.label_pattern)
    train = set(read_json(split).get("train", []))
    records = [r for r in source.records if r.key in train and r.label in loaded.labels]
    kept, raw, _ = _decoded_embeddings(loaded, records)
    return records, kept, raw


def base_prototypes(loaded: rf.LoadedRun) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Prototypes of the run's own classes from its training split (needs the training data where it was)."""
    records, kept, raw = training_embeddings(loaded)
    data = loaded.meta["data"]["source"]
    center = raw.mean(0)
    emb = F.normalize(raw - center, dim=1)
    rows, counts = [], []
    for label in loaded.labels:
        mine = [j for j, i in enumerate(kept) if records[i].label == label]
        if not mine:
            raise DataError(f"no training example of class {label!r} could be read from {data}")
        rows.append(prototype(emb[mine]))
        counts.append(len(mine))
    return torch.stack(rows), counts, center


def enroll(run, label: str, files, *, shots: int | None = None, progress: bool = False) -> dict:
    """Add (or replace) the few-shot class `label` from example files; returns what is stored now."""
    loaded = rf.load_run(run)
    if loaded.task != "classify":
        raise RunError(f"{run} is a {loaded.task} run; few-shot classes go into classification runs")
    label = str(label).strip()
    if not label:
        raise DataError("give the new class a name")
    if label in loaded.labels:
        raise DataError(f"{label!r} is already one of the classes the model was trained on; pick another name")
    source = list_files([str(f) for f in ([files] if isinstance(files, (str, Path)) else files)])
    if source.modality != loaded.modality:
        raise InputMismatchError(f"{run} recognises {loaded.modality}, but the examples are {source.modality}: give "
                                 f"it {loaded.modality} files")
    kept, emb, skipped = _decoded_embeddings(loaded, source.records, progress)
    want = shots if shots is not None else len(source.records)
    if len(kept) < max(1, want):
        why = f" ({len(skipped)} unreadable: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{label!r} needs {want} example(s) but {len(kept)} could be read{why}; give more files")
    protos = load_prototypes(loaded.run_dir)
    if protos is None:
        vectors, counts, center = base_prototypes(loaded)
        protos = {"labels": list(loaded.labels), "fewshot": [], "counts": counts, "vectors": vectors,
                  "center": center}
    row = prototype(F.normalize(emb - protos["center"], dim=1))
    labels, fewshot, counts = list(protos["labels"]), list(protos["fewshot"]), list(protos["counts"])
    vectors = protos["vectors"].float()
    if label in labels:  # a few-shot class again: its new examples replace the old ones
        i = labels.index(label)
        vectors[i], counts[i] = row, len(kept)
    else:
        labels.append(label)
        fewshot.append(label)
        counts.append(len(kept))
        vectors = torch.cat([vectors, row[None]])
    save_weights({"prototypes": vectors, "center": protos["center"]}, loaded.run_dir / WEIGHTS)
    index = {"labels": labels, "fewshot": fewshot, "counts": counts, "dim": int(vectors.shape[1]),
             "rule": "nearest prototype by cosine over all classes; probability = softmax(10 * cosine)",
             "skipped": [list(s) for s in skipped]}
    write_json(loaded.run_dir / INDEX, index)
    return {**index, "enrolled": label, "examples": len(kept)}


def forget(run, label: str) -> dict:
    """Remove a few-shot class; with none left, the run predicts with its classifier again."""
    run_dir = Path(run)
    protos = load_prototypes(run_dir)
    if protos is None or label not in protos["fewshot"]:
        raise DataError(f"{label!r} is not a few-shot class of {run}")
    i = protos["labels"].index(label)
    keep = [j for j in range(len(protos["labels"])) if j != i]
    labels = [protos["labels"][j] for j in keep]
    fewshot = [f for f in protos["fewshot"] if f != label]
    if not fewshot:  # back to the classifier: the files are seehear's own, so they may go
        (run_dir / INDEX).unlink()
        (run_dir / WEIGHTS).unlink()
        return {"labels": labels, "fewshot": []}
    save_weights({"prototypes": protos["vectors"][keep], "center": protos["center"]}, run_dir / WEIGHTS)
    index = {k: v for k, v in protos.items() if k not in ("vectors", "center")}
    index.update(labels=labels, fewshot=fewshot, counts=[protos["counts"][j] for j in keep])
    write_json(run_dir / INDEX, index)
    return index


def evaluate_fewshot(run, data, ways: int = 5, shots=(1, 5), episodes: int = 600, seed: int = 0,
                     queries: int = 15, progress: bool = False) -> dict:
    """Few-shot accuracy of a run's embedding on the classes of `data` (new ones or not): `episodes` episodes of
    `ways` classes drawn at random, `shots` labelled examples each (an int or several), `queries` more of each
    classified by the nearest prototype by cosine on centred embeddings (the rule `enroll` + `predict` follow).
    Returns, per shot count, the mean accuracy over episodes and its 95% interval (1.96 standard errors, as
    few-shot papers report). The same seed gives the same episodes for every run compared.

    Embeddings are centred on the run's training-split mean when its training data is where it was, else on the
    mean of `data` (no labels used; `center` in the result says which)."""
    loaded = rf.load_run(run)
    if loaded.task != "classify":
        raise RunError(f"{run} is a {loaded.task} run; few-shot evaluation needs a classification run's embedding")
    source = load_source(str(data), label_pattern=loaded.cfg.data.label_pattern)
    if source.modality != loaded.modality:
        raise InputMismatchError(f"{run} recognises {loaded.modality}, but {data} holds {source.modality}")
    kept, raw, skipped = _decoded_embeddings(loaded, source.records, progress)
    labels = sorted({source.records[i].label for i in kept})
    y = torch.tensor([labels.index(source.records[i].label) for i in kept], dtype=torch.long)
    try:
        center, centred_on = training_embeddings(loaded, "centring needs the training data")[2].mean(0), "training split"
    except DataError:
        center, centred_on = raw.mean(0), "evaluation data"
    emb = F.normalize(raw - center, dim=1)
    pools = by_class(y)
    out = {}
    for k in [shots] if isinstance(shots, int) else list(shots):
        check_episodes(y, ways, k, queries, labels, what="evaluation")
        g = torch.Generator().manual_seed(seed)
        accs = torch.empty(episodes)
        for e in range(episodes):
            s, q, _ = sample_episode(pools, ways, k, queries, g)
            _, acc = prototypical_loss(emb[s], y[s], emb[q], y[q], metric="cosine")
            accs[e] = acc
        half = 1.96 * float(accs.std()) / episodes ** 0.5 if episodes > 1 else float("nan")
        out[str(k)] = {"accuracy": round(float(accs.mean()), 4), "ci95": round(half, 4)}
    return {"ways": ways, "queries": queries, "episodes": episodes, "seed": seed, "shots": out, "classes": labels,
            "new_classes": [c for c in labels if c not in loaded.labels], "examples": len(kept), "center": centred_on,
            "skipped": [list(s) for s in skipped]}

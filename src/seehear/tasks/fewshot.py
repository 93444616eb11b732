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


def base_prototypes(loaded: rf.LoadedRun) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Prototypes of the run's own classes from its training split (needs the training data where it was)."""
    data = (loaded.meta.get("data") or {}).get("source")
    split = loaded.run_dir / "split.json"
    if not data or not Path(data).exists() or not split.is_file():
        raise DataError(f"the first few-shot class needs the run's training data, to give its own classes "
                        f"prototypes too, but {data or 'it'} is not there any more; put it back where it was trained")
    source = load_source(data, label_pattern=loaded.cfg.data.label_pattern)
    train = set(read_json(split).get("train", []))
    records = [r for r in source.records if r.key in train and r.label in loaded.labels]
    kept, raw, _ = _decoded_embeddings(loaded, records)
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

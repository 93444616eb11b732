"""`seehear compress RUN --out RUN-small`: a smaller, faster copy of a run, as a new run folder.

Steps, each optional: structured channel pruning (prune.py) then fine-tuning on the run's training split — distilled
from a teacher run when one is given (distill.py) — and an int8 ONNX copy checked against fp32 (int8_check.py).
The new folder holds what load_run, predict, evaluate and export read (meta.json records the pruned shapes and what
was done), metrics.json of the compressed model on the run's held-out split, and compress.json: parameters, size on
disk, FLOPs, batch-1 ONNX Runtime latency and held-out accuracy of the original and each compressed form, which
report.html shows. The folder is assembled beside OUT and renamed into place whole at the end.

int8: post-training quantization (PTQ) first; when its accuracy drop on export_int8's held-out check inputs exceeds
qat.MAX_PTQ_DROP (or it was refused), or when asked (`qat=True`), a short quantization-aware fine-tune (qat.py) and
quantization again. The QAT weights are kept only if their int8 copy does at least as well on those inputs;
compress.json "int8" says which path was taken ("ptq" or "qat") with the accuracies before and after.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from seehear.data.decode import pcm_to_float
from seehear.engine.checkpoint import read_json, write_json
from seehear.errors import RunError, SeehearError

FINETUNE_EPOCHS = 4
NOT_COPIED = {"model.safetensors", "meta.json", "metrics.json", "report.html", "model.onnx", "model.json",
              "model.int8.onnx", "compress.json"}  # rewritten for the compressed model, or stale for it


def _held_out(run, data):
    """(inputs, labels) to measure accuracy on: DATA if given, else the run's test split (valid if none)."""
    from seehear.deploy.distill import Split, load_split

    if data is not None:
        import torch

        from seehear.data.cache import decode_all
        from seehear.data.sources import load_source

        recs = [r for r in load_source(data, label_pattern=run.cfg.data.label_pattern,
                                       modality=run.modality).records if r.label in run.labels]
        d = decode_all(recs, run.cfg, run.modality, progress=False)
        index = {c: i for i, c in enumerate(run.labels)}
        return Split(d.x, torch.tensor([index[recs[i].label] for i in d.keep]))
    split = read_json(Path(run.run_dir) / "split.json")
    return load_split(run, "test" if split.get("test") else "valid")


def _onnx_input(x):
    import torch

    return (pcm_to_float(x) if x.dtype == torch.int16 else x).numpy()


def _recalibrate(src, model) -> dict:
    """Temperature scaling of the fine-tuned model on the run's validation split (as at the end of training)."""
    from seehear.deploy.distill import load_split
    from seehear.trust.calibration import calibrate

    model.temperature.fill_(1.0)
    try:
        valid = load_split(src, "valid")
    except RunError:
        return calibrate(model, None, None)  # says why it was skipped
    return {**calibrate(model, valid.x, valid.y), "fitted_on": "valid"}


def compress(run: str | Path, out: str | Path, *, prune: float | None = None, int8: str | Path | bool | None = None,
             distill_from: str | Path | None = None, data: str | Path | None = None, distill: bool = True,
             epochs: int = FINETUNE_EPOCHS, overwrite: bool = False, qat: bool | None = None,
             qat_epochs: int | None = None) -> dict:
    """Write a compressed copy of RUN to OUT and return its compress.json.

    `prune`: fraction of channels to remove, then fine-tune (distilling from the unpruned model unless a teacher
    is named, or on the hard labels alone with distill=False); `distill_from`: a teacher run with the same labels
    to distill from (without `prune`, the run's own model is the student); `int8`: calibration data for a checked
    int8 ONNX copy (True: the run's data source); `qat`: quantization-aware training of the int8 copy — None
    (default): only when post-training quantization loses more than half a point, True: always, False: never;
    `qat_epochs`: its length (default qat.QAT_EPOCHS); `data`: labelled data to measure accuracy on (default: the
    run's held-out split)."""
    import torch

    from seehear.deploy import distill as distilling, prune as pruning  # not `distill`: that is the flag
    from seehear.deploy.onnx import example_input
    from seehear.engine.run_folder import describe_command, load_run, now, save_model, write_meta
    from seehear.evaluation import compute_metrics, write_report

    src, out = load_run(run), Path(out)
    if src.modality == "audio-image":
        raise SeehearError(f"{run} is an audio-image run: seehear compress takes single-input runs; `seehear export "
                           f"{run}` writes its fp32 ONNX graph")
    if out.exists() and any(out.iterdir()):
        mine = (out / "meta.json").is_file() and "compress" in read_json(out / "meta.json")
        if not (overwrite and mine):
            raise RunError(f"{out} exists and is not empty; choose another --out"
                           + ("" if mine else " (seehear compress only replaces a folder it wrote, with --overwrite)"))
    if prune is None and int8 in (None, False) and distill_from is None:
        raise SeehearError("nothing to do: give --prune FRACTION, --int8 DATA and/or --distill-from TEACHER_RUN")
    if qat and int8 in (None, False):
        raise SeehearError("--qat trains the int8 copy: give --int8 DATA as well")
    # Pruning without a named teacher distills from the unpruned model itself: it knows more than the labels do.
    teacher = load_run(distill_from) if distill_from else (load_run(run) if prune is not None and distill else None)
    if teacher is not None and teacher.labels != src.labels:
        raise SeehearError(f"teacher {distill_from} has labels {teacher.labels[:5]}..., the run {run} has "
                           f"{src.labels[:5]}...: distillation needs the same labels in the same order")
    torch.manual_seed(0)
    model = load_run(run).model  # a second copy, changed in place; src.model stays the reference
    test = _held_out(src, data)
    done: dict = {"from": str(Path(run).resolve()), "date": now(), "command": describe_command()}
    train = None
    if prune is not None or teacher is not None:
        train = distilling.load_split(src, "train")
    if prune is not None:
        pruning.prune_channels(model, float(prune), train.x[:4])
        done["prune"] = {"ratio": float(prune), "method": "torch-pruning, L2 group magnitude, structured channels"}
    if train is not None:
        kl_before = distilling.kl_to_teacher(model, teacher.model, test.x) if teacher else None
        losses = distilling.finetune(model, train, teacher=teacher.model if teacher else None, epochs=epochs)
        done["finetune"] = {"epochs": epochs, "examples": int(len(train.y)), "loss_per_epoch": losses,
                            "teacher": str(Path(teacher.run_dir).resolve()) if teacher else None}
        if teacher:
            done["finetune"].update(kl_to_teacher_before=kl_before,
                                    kl_to_teacher_after=distilling.kl_to_teacher(model, teacher.model, test.x))
        calibration = _recalibrate(src, model)  # new weights: the old temperature no longer fits them

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run folder is as readable as `seehear train` makes it
    try:
        for f in sorted(Path(run).iterdir()):  # the run's own files (config, split...); OUT appears whole below
            if f.is_file() and f.name not in NOT_COPIED:
                shutil.copy2(f, work / f.name)
        save_model(work, model)
        meta = {k: v for k, v in src.meta.items() if k not in ("format", "seehear_version", "shapes")}
        meta["model"] = {**meta.get("model", {}), "params": pruning.count_parameters(model)}
        if prune is not None:
            meta["shapes"] = pruning.shape_record(model)
        if train is not None:
            meta["calibration"] = calibration
        meta["compress"] = done
        write_meta(work, meta)
        loaded = load_run(work)  # what every other command will see: must be the model just made
        x_probe = example_input(src.meta["input"], batch=3, seed=4)
        with torch.no_grad():
            if not torch.allclose(loaded.model(x_probe), model.eval()(x_probe), atol=1e-4, rtol=1e-4):
                raise SeehearError(f"the compressed model of {run} does not reload to the same function "
                                   f"(model {src.meta['model']['name']} cannot be rebuilt from its pruned shapes)")
        scratch = Path(tempfile.mkdtemp(prefix=".int8.", dir=work))
        int8_paths, int8_record = {}, None
        if int8 not in (None, False):
            calib = src.meta["data"]["source"] if int8 is True else int8
            loaded, int8_paths, int8_record = _int8(src, work, loaded, meta, calib, qat, qat_epochs, test, scratch)
        table = _measure(src, loaded, work, test, int8_paths, int8_record)
        shutil.rmtree(scratch)
        done["table"] = table["rows"]
        done.update({k: v for k, v in table.items() if k != "rows"})
        from seehear.engine.trainer import predict_probs

        probs = predict_probs(loaded.model, test.x, precision="32").numpy()
        write_json(work / "metrics.json", {"test": compute_metrics(test.y.numpy(), probs, src.labels)})
        meta["compress"] = done
        write_meta(work, meta)
        write_json(work / "compress.json", done)
        write_report(work)
        if out.exists():
            shutil.rmtree(out)  # only an empty folder or one this command wrote (checked above)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return done


def _accuracy(model, test, batch: int = 256) -> float:
    """Held-out top-1 accuracy of a model that is still to be trained (predict_probs would make its weights
    inference tensors)."""
    import torch

    model.eval()
    with torch.no_grad():
        top = torch.cat([model(pcm_to_float(x) if x.dtype == torch.int16 else x).argmax(1)
                         for x in test.x.split(batch)])
    return round(float((top == test.y).float().mean()), 4)


def _int8(src, work: Path, loaded, meta: dict, calib, qat, qat_epochs, test, scratch: Path):
    """The int8 copy of the model in `work`: PTQ, then QAT when `qat` (or auto, see qat.wants_qat) says so.
    Returns (the run as now saved in work, {table row name: int8 ONNX path}, the compress.json "int8" record)."""
    import copy

    from seehear.deploy import distill as distilling, qat as qating
    from seehear.deploy.cpu import int8_isa
    from seehear.deploy.int8_check import Int8Refused, export_int8
    from seehear.deploy.onnx import example_input
    from seehear.engine.run_folder import load_run, save_model, write_meta

    def attempt(out):
        try:
            path, info = export_int8(work, calib, out)
            return path, info, {k: info[k] for k in KEPT_INT8 if k in info} | {"drop": qating.ptq_drop(info)}
        except Int8Refused as e:
            return None, None, {"refused": str(e)}

    def keep_ptq(run):
        if ptq_path is None:
            return run, {}, {**record, "path": "ptq", "refused": ptq["refused"]}
        shutil.copyfile(ptq_path, work / "model.int8.onnx")
        return run, {"compressed int8": work / "model.int8.onnx"}, {**record, **ptq, "path": "ptq"}

    ptq_path, ptq_info, ptq = attempt(scratch / "ptq.int8.onnx")
    record = {"ptq": ptq, "max_ptq_drop": qating.MAX_PTQ_DROP, "qat_mode": {None: "auto"}.get(qat, bool(qat))}
    if not qating.wants_qat(qat, qating.ptq_drop(ptq_info)):
        return keep_ptq(loaded)
    try:
        train = distilling.load_split(src, "train")
    except RunError as e:  # a run without its training split: no QAT (unless asked for: then the error), said so
        if qat:
            raise
        record["qat"] = {"skipped": str(e)}
        return keep_ptq(loaded)
    model, before = loaded.model, copy.deepcopy(loaded.model.state_dict())
    teacher, meta_before = copy.deepcopy(model).eval(), copy.deepcopy(meta)
    fp32_nodes = ptq_info["fp32_nodes"] if ptq_info else None
    reduce_range = ptq_info["reduce_range"] if ptq_info else int8_isa()["saturates"]
    acc_before = _accuracy(model, test)
    done = qating.qat_finetune(model, train, teacher=teacher, reduce_range=reduce_range,
                               example=example_input(src.meta["input"], batch=2, seed=5),
                               fp32_leading=max(1, len(fp32_nodes) - 1) if fp32_nodes else 1,
                               fp32_last=fp32_nodes != [], **({"epochs": qat_epochs} if qat_epochs else {}))
    meta["calibration"] = _recalibrate(src, model)
    save_model(work, model)
    write_meta(work, meta)
    qat_path, qat_info, after = attempt(scratch / "qat.int8.onnx")
    done.update(after, test_accuracy_fp32_before=acc_before, test_accuracy_fp32_after=_accuracy(model, test))
    record["qat"] = done
    if qat_path is not None and (ptq_info is None or _better_or_equal(qat_info, ptq_info)):
        shutil.copyfile(qat_path, work / "model.int8.onnx")
        paths = {"compressed int8": work / "model.int8.onnx"}
        if ptq_path is not None:
            paths["compressed int8 (PTQ, before QAT)"] = ptq_path
        return load_run(work), paths, {**record, **after, "path": "qat"}
    # QAT did not help on the check inputs: the model as it was before, and its PTQ copy (or none)
    model.load_state_dict(before)
    meta.clear()
    meta.update(meta_before)
    save_model(work, model)
    write_meta(work, meta)
    record["qat"]["kept"] = False
    return keep_ptq(load_run(work))


KEPT_INT8 = ("top1_agreement_with_fp32", "top1_agreement_unoptimized", "check_examples", "fp32_nodes", "cpu_isa",
             "reduce_range", "accuracy_fp32", "accuracy_int8", "calibration_method")


def _better_or_equal(new: dict, old: dict) -> bool:
    """Is the QAT int8 copy at least as good as the PTQ one on the same held-out check inputs? By accuracy when the
    data is labelled, else by top-1 agreement with its own fp32 model."""
    key = "accuracy_int8" if "accuracy_int8" in new and "accuracy_int8" in old else "top1_agreement_with_fp32"
    return new[key] >= old[key]


def _measure(src, loaded, work: Path, test, int8_paths: dict, int8_record: dict | None) -> dict:
    """Rows of the compress.json table: original fp32, compressed fp32, and the int8 copies made (ONNX Runtime, 1
    thread)."""
    from seehear.deploy.measure import flops, latencies_ms, onnx_accuracy
    from seehear.deploy.onnx import example_input, export_onnx
    from seehear.deploy.prune import count_parameters

    x1 = example_input(src.meta["input"], batch=1, seed=9)
    xt, yt = _onnx_input(test.x), test.y.numpy()
    with tempfile.TemporaryDirectory() as d:
        orig_onnx = export_onnx(src.run_dir, Path(d) / "original.onnx")
        small_onnx = export_onnx(work)  # work/model.onnx: part of the new run
        paths = {"original": orig_onnx, "compressed": small_onnx, **int8_paths}
        extra: dict = {} if int8_record is None else {"int8": int8_record}
        lat = latencies_ms(paths, x1.numpy())
        rows = []
        for name, p in paths.items():
            model = src.model if name == "original" else loaded.model
            rows.append({"model": name, "parameters": count_parameters(model),
                         "weights_kb": None if "int8" in name else round(
                             (Path(src.run_dir if name == "original" else work) / "model.safetensors"
                              ).stat().st_size / 1024, 1),
                         "onnx_kb": round(Path(p).stat().st_size / 1024, 1),
                         "mflops": round(flops(model, x1) / 1e6, 3),
                         "latency_ms_batch1": lat[name], "accuracy": onnx_accuracy(p, xt, yt)})
        if int8_record is not None and "compressed int8" in paths:
            rows[2]["method"] = int8_record["path"]
        extra["held_out_examples"] = int(len(yt))
        extra["note"] = ("latency: ONNX Runtime, batch 1, one thread, median over interleaved rounds on a CPU "
                         "that may be shared with other processes; FLOPs by torch FlopCounterMode (int8 rows have "
                         "the fp32 FLOP count: the same operations in 8-bit)")
    return {"rows": rows, **extra}

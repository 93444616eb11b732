"""Run folders as served models: a classifier (ONNX Runtime by default, or PyTorch), an audio-image classifier
(two inputs, either optional) or a transcriber.

Each offers `call(items)` for the batcher: raw uploads in, one result (or an HTTPError) per upload out. Decoding
happens there too, in the batch worker thread, so the event loop never decodes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seehear.engine.checkpoint import read_json
from seehear.errors import ConfigError, RunError, SeehearError
from seehear.serve.limits import (HTTPError, Limits, check_kind, clean_wave, decode_upload, finite_or_refuse,
                                  refusal)


def threads_for_machine(workers: int = 1) -> int:
    """Threads for one model call: the cores this process may use less one (the event loop needs it to read the
    next requests while batches run), shared among the batches that run at once."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, (cores - 1) // max(1, workers))


class Classifier:
    task = "classify"

    def __init__(self, run_dir: Path, engine: str, limits: Limits, threads: int):
        from seehear.engine.run_folder import load_run

        self.run_dir, self.engine, self.limits = run_dir, engine, limits
        self.loaded = load_run(run_dir)
        self.labels, self.spec = self.loaded.labels, self.loaded.meta["input"]
        self.modality = self.spec["modality"]
        self.streaming = False
        if engine == "onnx":
            from seehear.deploy.onnx import export_onnx, onnx_session

            onnx = run_dir / "model.onnx"
            weights = run_dir / "model.safetensors"
            if not onnx.is_file() or onnx.stat().st_mtime < weights.stat().st_mtime:
                export_onnx(run_dir)  # once, at start-up: the front end goes inside the graph
            self.session = onnx_session(onnx, threads)
        elif engine == "torch":
            import torch

            torch.set_num_threads(threads)
        else:
            raise ConfigError(f"engine {engine!r} is not one of onnx, torch")

    def call(self, items: list[bytes]) -> list:
        xs, out = [], [None] * len(items)
        for i, data in enumerate(items):
            try:
                xs.append((i, decode_upload(data, self.spec, self.limits)))
            except HTTPError as e:
                out[i] = e
            except Exception as e:  # noqa: BLE001 - a decoder's surprise on hostile bytes is still the upload's fault
                out[i] = HTTPError(422, f"could not decode the upload ({type(e).__name__})")
        if xs:
            probs = self.probs(np.stack([x for _, x in xs]))
            for (i, _), p in zip(xs, probs):
                try:
                    out[i] = finite_or_refuse(p)
                except HTTPError as e:
                    out[i] = e
        return out

    def probs(self, x: np.ndarray) -> np.ndarray:
        if self.engine == "onnx":
            return softmax(self.session.run(None, {"input": x})[0])
        import torch

        from seehear.engine.trainer import predict_probs

        return predict_probs(self.loaded.model, torch.from_numpy(x), precision="32").double().numpy()

    def top(self, p: np.ndarray, k: int) -> list[dict]:
        order = np.argsort(-p)[: max(1, min(k, len(self.labels)))]
        return [{"label": self.labels[int(c)], "probability": round(float(p[c]), 4)} for c in order]

    def describe(self) -> dict:
        return {"task": self.task, "modality": self.modality, "engine": self.engine, "labels": self.labels,
                "input": self.spec}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class PairClassifier(Classifier):
    """An audio-image run (models/fusion.py). An item is {"image": bytes, "audio": bytes}, either one missing: a
    missing input goes in as zeros with its `present` column 0, which the model treats as absent (as predict does
    with None), so image-only, audio-only and paired requests share one batch."""
    fields = ("image", "audio")

    def call(self, items: list[dict]) -> list:
        rows, out = [], [None] * len(items)
        for i, item in enumerate(items):
            try:
                rows.append((i, {n: self.decode(n, item[n]) for n in self.fields if n in item}))
            except HTTPError as e:
                out[i] = e
        if rows:
            image_spec, audio_spec = self.spec["image"], self.spec["audio"]
            n, c, size = len(rows), image_spec["channels"], image_spec["size"]
            feed = {"image": np.zeros((n, c, size, size), np.uint8),
                    "audio": np.zeros((n, audio_spec["num_samples"]), np.float32),
                    "present": np.zeros((n, 2), np.float32)}
            for r, (_, x) in enumerate(rows):
                for col, name in enumerate(self.fields):
                    if name in x:
                        feed[name][r], feed["present"][r, col] = x[name], 1.0
            for (i, _), p in zip(rows, self.probs(feed)):
                try:
                    out[i] = finite_or_refuse(p)
                except HTTPError as e:
                    out[i] = e
        return out

    def decode(self, name: str, data: bytes) -> np.ndarray:
        try:
            return decode_upload(data, self.spec[name], self.limits)
        except HTTPError as e:
            raise HTTPError(e.status, f"field {name!r}: {e.message}", e.headers) from None
        except Exception as e:  # noqa: BLE001 - as in Classifier.call
            raise HTTPError(422, f"field {name!r}: could not decode the upload ({type(e).__name__})") from None

    def probs(self, feed: dict) -> np.ndarray:
        if self.engine == "onnx":
            return softmax(self.session.run(None, feed)[0])
        import torch

        with torch.no_grad():  # float32, as the ONNX graph
            logits = self.loaded.model.eval()(*(torch.from_numpy(feed[k]) for k in ("image", "audio", "present")))
        return softmax(logits.float().numpy())

    def describe(self) -> dict:
        return {**super().describe(), "fields": list(self.fields)}


class SpeechToText:
    task = "transcribe"
    modality = "audio"

    def __init__(self, run_dir: Path, limits: Limits, threads: int):
        import torch

        from seehear.tasks.transcribe import load

        torch.set_num_threads(threads)
        self.run_dir, self.limits = run_dir, limits
        self.loaded = load(run_dir)
        self.sample_rate = self.loaded.cfg.audio.sample_rate
        # a request is recognised whole, as `seehear transcribe` does up to transcribe.max_seconds
        self.max_seconds = min(limits.max_audio_seconds, float(self.loaded.cfg.transcribe.max_seconds))
        self.spec = {"modality": "audio", "sample_rate": self.sample_rate, "max_seconds": self.max_seconds}
        self.streaming = (hasattr(self.loaded.model.acoustic, "step")
                          and getattr(self.loaded.model, "normalize", "none") == "none")
        self.engine = "torch"

    def call(self, items: list[bytes]) -> list:
        import torch

        from seehear.data.decode import decode_audio_bytes

        waves, out = [], [None] * len(items)
        for i, data in enumerate(items):
            try:
                check_kind(data, "audio")
                w = decode_audio_bytes(data, sample_rate=self.sample_rate, num_samples=None, crop="start",
                                       max_seconds=self.max_seconds)
                waves.append((i, torch.from_numpy(clean_wave(w))))
            except HTTPError as e:
                out[i] = e
            except SeehearError as e:  # CorruptFileError: the upload's fault
                out[i] = refusal(e)
            except Exception as e:  # noqa: BLE001 - as above
                out[i] = HTTPError(422, f"could not decode the upload ({type(e).__name__})")
        if waves:
            for (i, w), h in zip(waves, self.loaded.recognize([w for _, w in waves])):
                seconds = round(len(w) / self.sample_rate, 3)
                out[i] = {"start": 0.0, "end": seconds, "text": h.text, "words": h.words}
        return out

    def describe(self) -> dict:
        return {"task": self.task, "modality": "audio", "engine": self.engine, "labels": [],
                "input": self.spec, "streaming": self.streaming,
                "stream_format": {"sample_rate": self.sample_rate, "dtype": ["f32", "s16"], "endian": "little",
                                  "channels": 1} if self.streaming else None}


def load_model(run_dir, engine: str, limits: Limits, threads: int):
    run_dir = Path(run_dir)
    if not (run_dir / "meta.json").is_file():
        raise RunError(f"{run_dir} is not a run folder (no meta.json); train one with `seehear train`")
    task = read_json(run_dir / "meta.json").get("task", "classify")
    if task == "transcribe":
        return SpeechToText(run_dir, limits, threads)
    if task != "classify":
        raise RunError(f"{run_dir} is a {task} run; seehear serve serves classify and transcribe runs")
    if read_json(run_dir / "meta.json").get("modality") == "audio-image":
        return PairClassifier(run_dir, engine, limits, threads)
    return Classifier(run_dir, engine, limits, threads)

"""What the server accepts, and uploads (bytes in memory) → model input, with every check done before decoding.

Each refusal is an HTTPError with a 4xx status and a one-line message; nothing from a request touches the disk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seehear.data.decode import PCM_SCALE
from seehear.errors import SeehearError


@dataclass
class Limits:
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # checked from the header, before any pixel is decoded
    max_audio_seconds: float = 60.0  # checked from the header, before any sample is read
    request_timeout_s: float = 10.0
    max_queue: int = 256  # items waiting for the model, per model; beyond it: 503 with Retry-After
    max_batch: int = 32
    max_wait_ms: float = 2.0
    workers: int = 2  # batches in flight per model, each in its own thread (one decodes while one runs)
    max_streams: int = 8  # open WebSocket streams, per model
    max_stream_seconds: float = 600.0  # audio one stream may send
    max_chunk_bytes: int = 256 * 1024  # one WebSocket message


class HTTPError(SeehearError):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}
        super().__init__(message)


# --- what the bytes are (the filename and the client's Content-Type are not trusted) -----------------------------

_IMAGE_MAGIC = [(b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
                (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"P5", "pgm"), (b"P6", "ppm")]
_AUDIO_MAGIC = [(b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"), (b"\xff\xfb", "mp3"), (b"\xff\xf3", "mp3"),
                (b"\xff\xf2", "mp3")]


def sniff(data: bytes) -> tuple[str, str] | None:
    """(modality, format) from the first bytes, or None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image", "webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio", "wav"
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "audio", "aiff"
    for magic, fmt in _IMAGE_MAGIC:
        if data.startswith(magic):
            return "image", fmt
    for magic, fmt in _AUDIO_MAGIC:
        if data.startswith(magic):
            return "audio", fmt
    return None


def check_kind(data: bytes, modality: str) -> str:
    if not data:
        raise HTTPError(400, "empty upload: send an image or an audio file as the body or as multipart field 'file'")
    kind = sniff(data)
    if kind is None:
        raise HTTPError(415, f"the upload is not a recognised {modality} file (by its content); send "
                             f"{'PNG, JPEG, GIF, BMP, TIFF, WebP' if modality == 'image' else 'WAV, FLAC, OGG, MP3'}")
    if kind[0] != modality:
        raise HTTPError(415, f"this model recognises {modality}, but the upload is {kind[0]} ({kind[1]})")
    return kind[1]


# --- decoding ----------------------------------------------------------------------------------------------------

def decode_upload(data: bytes, spec: dict, limits: Limits) -> np.ndarray:
    """One upload → the model's raw input: uint8 [C, H, W], uint8 [T, C, H, W] (an animated GIF/WebP for a frames
    run) or float32 [S] (clip length from meta.json["input"])."""
    from seehear.data.decode import decode_audio_bytes, decode_image_bytes

    check_kind(data, "image" if spec["modality"] == "frames" else spec["modality"])
    try:
        if spec["modality"] == "frames":
            from seehear.data.frames import decode_animation_bytes

            return decode_animation_bytes(data, count=spec["frames"], size=spec["size"], channels=spec["channels"],
                                          resize=spec.get("resize", "stretch"),
                                          max_pixels=limits.max_image_pixels)[0].numpy()
        if spec["modality"] == "image":
            return decode_image_bytes(data, size=spec["size"], channels=spec["channels"],
                                      resize=spec.get("resize", "stretch"), max_pixels=limits.max_image_pixels).numpy()
        w = decode_audio_bytes(data, sample_rate=spec["sample_rate"], num_samples=spec.get("num_samples"),
                               crop=spec.get("crop", "center"), max_seconds=limits.max_audio_seconds)
    except SeehearError as e:
        raise refusal(e) from None
    return clean_wave(w)


def clean_wave(w: torch.Tensor) -> np.ndarray:
    """NaN and infinities (a float WAV may hold them) would make the scores NaN: zeroed, and the rest bounded."""
    return np.clip(np.nan_to_num(w.numpy(), nan=0.0, posinf=0.0, neginf=0.0), -1e3, 1e3).astype(np.float32)


def refusal(e: SeehearError) -> HTTPError:
    reason = getattr(e, "reason", str(e))
    if "pixels" in reason or "decompression bomb" in reason or "over the limit" in reason:
        return HTTPError(413, reason)
    return HTTPError(422, reason)


def decode_pcm(data: bytes, dtype: str) -> np.ndarray:
    """One WebSocket message of little-endian PCM: float32 ("f32") or int16 ("s16"), mono."""
    width = 4 if dtype == "f32" else 2
    if len(data) % width:
        raise HTTPError(400, f"a {dtype} PCM chunk must be a whole number of {width}-byte samples, got {len(data)} "
                             f"bytes")
    x = np.frombuffer(data, dtype="<f4" if dtype == "f32" else "<i2")
    if dtype == "s16":
        return x.astype(np.float32) / PCM_SCALE
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -1e3, 1e3).astype(np.float32)


def finite_or_refuse(probs: np.ndarray) -> np.ndarray:
    if not np.isfinite(probs).all():
        raise HTTPError(422, "the model gave no finite scores for this input")
    return probs


# --- reading the body --------------------------------------------------------------------------------------------

async def read_upload(request, limits: Limits) -> bytes:
    """The upload's bytes: the raw body, or the multipart field 'file' (or the first file field). The size limit
    is checked from Content-Length and again while reading, so an oversized body is never held whole; a body that
    trickles in slower than the request timeout is refused (408), so slow clients cannot hold the server."""
    import asyncio

    try:
        return await asyncio.wait_for(_read_upload(request, limits), limits.request_timeout_s)
    except asyncio.TimeoutError:
        raise HTTPError(408, f"the upload did not arrive within {limits.request_timeout_s:g} s") from None


async def read_fields(request, limits: Limits, names: tuple[str, ...]) -> dict[str, bytes]:
    """A two-input model's upload: multipart fields `names` (each optional, at least one given; each up to
    max_upload_bytes), or one file as the raw body (or multipart field 'file'), filed under the name its content
    sniffs as. Same limits, timeout and refusals as read_upload."""
    import asyncio

    try:
        return await asyncio.wait_for(_read_fields(request, limits, names), limits.request_timeout_s)
    except asyncio.TimeoutError:
        raise HTTPError(408, f"the upload did not arrive within {limits.request_timeout_s:g} s") from None


async def _read_fields(request, limits: Limits, names: tuple[str, ...]) -> dict[str, bytes]:
    form = await _read_body(request, limits, files=len(names))
    if isinstance(form, bytes) or (form.get("file") is not None and not any(n in form for n in names)):
        data = form if isinstance(form, bytes) else await _file(form["file"], "file", limits.max_upload_bytes)
        if not data:
            raise HTTPError(400, f"empty upload: send multipart fields {' and/or '.join(names)}")
        kind = sniff(data)
        if kind is None or kind[0] not in names:
            raise HTTPError(415, f"the upload is not a recognised {' or '.join(names)} file (by its content)")
        return {kind[0]: data}
    got = {n: await _file(form[n], n, limits.max_upload_bytes) for n in names if form.get(n) is not None}
    if not got:
        raise HTTPError(400, f"multipart body has no {' or '.join(names)} field (send at least one of them as a "
                             f"file field)")
    return got


async def _file(part, name: str, limit: int) -> bytes:
    if not hasattr(part, "read"):
        raise HTTPError(400, f"multipart field {name!r} must be a file, not a text value")
    data = await part.read()
    if len(data) > limit:
        raise HTTPError(413, f"field {name!r} is over the limit of {limit:,} bytes")
    return data


async def _read_upload(request, limits: Limits) -> bytes:
    form = await _read_body(request, limits, files=1)
    if isinstance(form, bytes):
        return form
    f = form.get("file") or next((v for v in form.values() if hasattr(v, "read")), None)
    if f is None or not hasattr(f, "read"):
        raise HTTPError(400, "multipart body has no file field (send the file as field 'file')")
    return await f.read()


async def _read_body(request, limits: Limits, files: int):
    """The raw body (bytes: one file) or the parsed multipart form (at most `files` files of max_upload_bytes
    each). The size is checked from Content-Length and again while reading, so an oversized body is never held."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    cap = files * limits.max_upload_bytes if multipart else limits.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise HTTPError(413, f"upload of {int(declared):,} bytes is over the limit of {cap:,}")

    async def body():
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > cap:
                raise HTTPError(413, f"upload is over the limit of {cap:,} bytes")
            yield chunk

    if not multipart:
        return b"".join([c async for c in body()])
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(request.headers, body(), max_files=files, max_fields=8,
                             max_part_size=limits.max_upload_bytes)
    parser.spool_max_size = cap + 1  # parts stay in memory: never spooled to a temp file
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise HTTPError(400, f"bad multipart body: {e.message}") from None

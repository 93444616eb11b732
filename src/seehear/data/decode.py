"""One file → one tensor. Images via Pillow, audio via soundfile (torchaudio.load needs torchcodec: not used).

Anything wrong with a file becomes CorruptFileError(path, reason); the cache skips such files and lists them.
"""
from __future__ import annotations

import functools
import gzip
import io
import math
import os
import struct
import threading
import warnings

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image, ImageOps, UnidentifiedImageError

from seehear.errors import ConfigError, CorruptFileError

# We enforce our own max_pixels before decoding; Pillow's global bomb warning would only add noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_idx_lock = threading.Lock()


# --- images ------------------------------------------------------------------------------------------------------

def decode_image(record, *, size: int, channels: int, resize: str, max_pixels: int) -> torch.Tensor:
    """uint8 [channels, size, size]. Alpha is composited on white; 16-bit and float images are scaled to 0..255."""
    if resize not in ("stretch", "pad", "crop"):
        raise ConfigError(f"image.resize {resize!r} is not one of stretch, pad, crop")
    if channels not in (1, 3):
        raise ConfigError(f"image.channels must be 1 or 3, got {channels}")
    if record.member is not None:
        arr = _idx_member(record.path, record.member)
        im = _to_mode(Image.fromarray(arr), channels)
    else:
        im = _open_image(record.path, size, channels, max_pixels)
    return _fit(im, size, resize)


def decode_image_bytes(data: bytes, *, size: int, channels: int, resize: str, max_pixels: int,
                       name: str = "upload") -> torch.Tensor:
    """decode_image for a file held in memory (an upload): the same checks, nothing touches the file system."""
    if resize not in ("stretch", "pad", "crop"):
        raise ConfigError(f"image.resize {resize!r} is not one of stretch, pad, crop")
    return _fit(_open_image(io.BytesIO(data), size, channels, max_pixels, name=name), size, resize)


def fit_image(im: Image.Image, *, size: int, channels: int, resize: str) -> torch.Tensor:
    """An image already open (a frame of an animated file) -> uint8 [channels, size, size], as decode_image."""
    if resize not in ("stretch", "pad", "crop"):
        raise ConfigError(f"image.resize {resize!r} is not one of stretch, pad, crop")
    return _fit(_to_mode(im, channels), size, resize)


def _fit(im: Image.Image, size: int, resize: str) -> torch.Tensor:
    if resize == "stretch":
        im = im.resize((size, size), Image.Resampling.BILINEAR) if im.size != (size, size) else im
    elif resize == "pad":
        im = ImageOps.pad(im, (size, size), Image.Resampling.BILINEAR, color=0)
    else:
        im = ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    t = torch.from_numpy(a.copy())
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _open_image(path, size: int, channels: int, max_pixels: int, name: str | None = None) -> Image.Image:
    """path: a file name or a binary file object (then `name` is what errors call it)."""
    name = path if name is None else name
    if max_pixels and (Image.MAX_IMAGE_PIXELS or 0) * 2 < max_pixels:  # let genuine big images through Pillow
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(path) as im:  # reads the header only
            w, h = im.size
            if max_pixels and w * h > max_pixels:
                raise CorruptFileError(name, f"image is {w}x{h} = {w * h:,} pixels, over data.max_image_pixels="
                                             f"{max_pixels:,} (a likely decompression bomb); raise the limit if "
                                             f"it is genuine")
            if im.format == "JPEG":  # DCT-domain downscale: big photos decode many times faster
                im.draft("L" if channels == 1 else "RGB", (size, size))
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_mode(im, channels)
    except CorruptFileError:
        raise
    except FileNotFoundError:
        raise CorruptFileError(name, "file not found") from None
    except Image.DecompressionBombError as e:
        raise CorruptFileError(name, f"refused as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise CorruptFileError(name, "not an image Pillow can read (wrong extension or damaged file)") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError, EOFError... on bad data
        raise CorruptFileError(name, f"damaged image: {type(e).__name__}: {e}") from None


def _to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode → 'L' or 'RGB' uint8."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = Image.fromarray(_scale_to_uint8(np.asarray(im), im.mode))
    elif im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    elif im.mode == "1":
        im = im.convert("L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):  # composite on white: transparent background → white
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
    target = "L" if channels == 1 else "RGB"
    return im if im.mode == target else im.convert(target)


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit by its full range (consistent across images); 32-bit int and float by what they hold."""
    a = a.astype(np.float64)
    if mode.startswith("I;16"):
        a = a / 257.0
    elif mode == "I":
        a = a if a.max(initial=0) <= 255 else a / 257.0 if a.max() <= 65535 and a.min() >= 0 else _minmax(a)
    else:  # F
        a = a * 255.0 if a.min(initial=0) >= 0 and a.max(initial=0) <= 1 else _minmax(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi <= lo else (a - lo) * (255.0 / (hi - lo))


def image_info(path: str) -> dict:
    """Header-only: width, height, mode, format."""
    try:
        with Image.open(path) as im:
            return {"width": im.size[0], "height": im.size[1], "mode": im.mode, "format": im.format}
    except FileNotFoundError:
        raise CorruptFileError(path, "file not found") from None
    except Exception as e:  # noqa: BLE001
        raise CorruptFileError(path, f"not a readable image: {type(e).__name__}: {e}") from None


# --- MNIST IDX ---------------------------------------------------------------------------------------------------

def _open_idx(path: str):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def _parse_header(path, head: bytes):
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise CorruptFileError(path, "not an IDX file (bad magic number)")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise CorruptFileError(path, "IDX header is truncated")
    return _IDX_DTYPES[head[2]], struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim])


def read_idx_shape(path) -> tuple[int, ...]:
    """Dimensions from the header, without reading the data."""
    try:
        with _open_idx(path) as f:
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
    except (OSError, EOFError) as e:
        raise CorruptFileError(path, f"cannot read IDX file: {e}") from None
    return _parse_header(path, head)[1]


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str) -> np.ndarray:
    try:
        with _open_idx(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise CorruptFileError(path, f"cannot read IDX file: {e}") from None
    dtype, dims = _parse_header(path, data[:4 + 4 * data[3]] if len(data) >= 4 else data)
    offset = 4 + 4 * len(dims)
    count = math.prod(dims)
    dt = np.dtype(dtype)
    if len(data) - offset < count * dt.itemsize:
        raise CorruptFileError(path, f"IDX file is truncated: header says {dims}, data is short")
    arr = np.frombuffer(data, dtype=dt, count=count, offset=offset).reshape(dims)
    arr.setflags(write=False)
    return arr


def read_idx(path) -> np.ndarray:
    """Whole IDX array (cached per path; read-only)."""
    with _idx_lock:  # threads asking for the same big file parse it once
        return _read_idx_cached(str(path))


def _idx_member(path: str, i: int) -> np.ndarray:
    arr = read_idx(path)
    if not 0 <= i < len(arr):
        raise CorruptFileError(f"{path}#{i}", f"member {i} out of range (file holds {len(arr)})")
    a = arr[i]
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a.astype(np.float64), "F")
    return np.ascontiguousarray(a)


# --- audio -------------------------------------------------------------------------------------------------------

PCM_SCALE = 32767.0  # decoded audio is cached as int16 = round(float * 32767) (data/cache.py)


def pcm_to_float(x: torch.Tensor) -> torch.Tensor:
    """Samples as float32 in [-1, 1]: int16 (the cache's form) scaled back, float passed through."""
    return x.float() / PCM_SCALE if x.dtype == torch.int16 else x.float()


def float_to_pcm(x: torch.Tensor) -> torch.Tensor:
    """float samples -> int16 (clipped to [-1, 1]); int16 passed through."""
    if x.dtype == torch.int16:
        return x
    return x.clamp(-1.0, 1.0).mul(PCM_SCALE).round().to(torch.int16)


def decode_audio(record, *, sample_rate: int, num_samples: int | None, crop: str) -> torch.Tensor:
    """float32 [num_samples] (or the whole file when None): mono, resampled, cropped (center|start|energy), padded."""
    if crop not in ("center", "start", "energy"):
        raise ConfigError(f"audio.crop {crop!r} is not one of center, start, energy")
    x, sr = _read_audio(record.path, sample_rate, num_samples, crop)
    return _to_wave(x, sr, sample_rate, num_samples, crop)


def decode_audio_bytes(data: bytes, *, sample_rate: int, num_samples: int | None, crop: str,
                       max_seconds: float | None = None, name: str = "upload") -> torch.Tensor:
    """decode_audio for a file held in memory (an upload). A file longer than max_seconds (from its header) is
    refused before any sample is read."""
    if crop not in ("center", "start", "energy"):
        raise ConfigError(f"audio.crop {crop!r} is not one of center, start, energy")
    x, sr = _read_audio(io.BytesIO(data), sample_rate, num_samples, crop, max_seconds=max_seconds, name=name)
    return _to_wave(x, sr, sample_rate, num_samples, crop)


def _to_wave(x: np.ndarray, sr: int, sample_rate: int, num_samples: int | None, crop: str) -> torch.Tensor:
    w = torch.from_numpy(np.nan_to_num(x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]))
    if sr != sample_rate:
        w = AF.resample(w, sr, sample_rate)
    if num_samples is None:
        return w.contiguous()
    return _crop_pad(w, num_samples, crop)


def _read_audio(path, sample_rate: int, num_samples: int | None, crop: str, max_seconds: float | None = None,
                name: str | None = None):
    """Read [frames, channels] float32; for start/center crops of long files read only the window needed.
    path: a file name or a binary file object (then `name` is what errors call it)."""
    name = path if name is None else name
    try:
        with sf.SoundFile(path) as f:
            sr, total = f.samplerate, f.frames
            if total <= 0:
                raise CorruptFileError(name, "file holds no samples (zero length)")
            if max_seconds is not None and total > max_seconds * sr:
                raise CorruptFileError(name, f"audio is {total / sr:.1f} s long, over the limit of {max_seconds:g} s")
            need = None if num_samples is None else math.ceil(num_samples * sr / sample_rate) + 2 * 64
            if need is not None and crop != "energy" and total > 2 * need and f.seekable():
                f.seek(0 if crop == "start" else (total - need) // 2)
                x = f.read(need, dtype="float32", always_2d=True)
            else:
                x = f.read(dtype="float32", always_2d=True)
    except CorruptFileError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        if isinstance(path, io.IOBase):  # bytes in memory: no file to look at for a better reason
            raise CorruptFileError(name, f"not readable audio: {e}") from None
        raise audio_error(path, e) from None
    if len(x) == 0:
        raise CorruptFileError(name, "file holds no samples (truncated?)")
    return x, sr


def _crop_pad(w: torch.Tensor, n: int, crop: str) -> torch.Tensor:
    length = len(w)
    if length > n:
        if crop == "start":
            start = 0
        elif crop == "center":
            start = (length - n) // 2
        else:  # energy: the window of n samples holding the most energy (where the word is)
            e = np.concatenate([[0.0], np.cumsum(w.double().numpy() ** 2)])
            start = int(np.argmax(e[n:] - e[:-n]))
        return w[start:start + n].contiguous()
    if length < n:
        before = 0 if crop == "start" else (n - length) // 2
        return torch.nn.functional.pad(w, (before, n - length - before))
    return w.contiguous()


def audio_error(path, e) -> CorruptFileError:
    if not os.path.isfile(path):  # libsndfile reports a missing file as "System error"
        return CorruptFileError(path, "file not found")
    if os.path.getsize(path) == 0:
        return CorruptFileError(path, "empty file (zero bytes)")
    return CorruptFileError(path, f"not readable audio: {str(e).replace(str(path), 'file')}")


def audio_info(path: str) -> dict:
    """Header-only: sample_rate, channels, frames, duration (s), format, subtype."""
    try:
        i = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        raise audio_error(path, e) from None
    return {"sample_rate": i.samplerate, "channels": i.channels, "frames": i.frames,
            "duration": i.frames / i.samplerate if i.samplerate else 0.0, "format": i.format, "subtype": i.subtype}


# names used in the architecture contract
read_audio_info = audio_info
read_image_info = image_info

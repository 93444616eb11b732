"""Image sequences (modality frames): which paths are sequences, and one sequence decoded to uint8 [T, C, H, W].

An example is a folder of frame images (in natural name order: frame2 before frame10) or an animated GIF/WebP
(Pillow's ImageSequence). Every example becomes `frames.count` frames, longer ones sampled evenly over their
length and shorter ones padded by repeating their last frame, so that one tensor [N, T, C, H, W] holds them all
(data/cache.py). A frame folder whose frames differ in size is refused (skipped and listed), not resized: frames of
one clip that disagree usually mean two clips in one folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from PIL import Image, ImageSequence

from seehear.data.decode import decode_image, fit_image, image_info
from seehear.data.records import AUDIO_EXTS, IMAGE_EXTS, Record
from seehear.errors import CorruptFileError

ANIMATED_EXTS = {".gif", ".webp"}
_PROBE = 16  # animated files opened per class folder to tell animations from still GIFs (auto-detection)


def natural_key(name: str) -> list:
    """'f2.png' before 'f10.png': digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files directly in `folder` (hidden ones left out), in natural name order."""
    return sorted((f for f in Path(folder).iterdir() if f.is_file() and not f.name.startswith(".")
                   and f.suffix.lower() in IMAGE_EXTS), key=lambda f: natural_key(f.name))


def is_still(path) -> bool:
    """A readable image of one frame (a still GIF); False for animations and for files that cannot be read (the
    decoder reports those: one damaged file must not turn a set of clips into still images)."""
    try:
        with Image.open(path) as im:
            return not getattr(im, "is_animated", False)
    except Exception:  # noqa: BLE001
        return False


def _is_frame_folder(d: Path) -> bool:
    """A flat folder of still images (the frames): images directly in it, no media further down."""
    if not any(True for _ in frame_files(d)):
        return False
    return not any(e.is_dir() and not e.name.startswith(".") for e in d.iterdir())


def class_sequences(class_dir: Path, explicit: bool) -> tuple[list[Path], int] | None:
    """The sequences of one class folder (its frame folders and animated files, natural order) and how many other
    media files it holds; None (when not `explicit`) unless every example in it is a sequence."""
    entries = sorted((e for e in class_dir.iterdir() if not e.name.startswith(".")), key=lambda e: natural_key(e.name))
    folders = [e for e in entries if e.is_dir()]
    files = [e for e in entries if e.is_file() and e.suffix.lower() in IMAGE_EXTS | AUDIO_EXTS]
    anim = [f for f in files if f.suffix.lower() in ANIMATED_EXTS]
    seqs_dirs = [d for d in folders if _is_frame_folder(d)]
    others = len(files) - len(anim)
    if not explicit:
        if others or len(seqs_dirs) < len(folders) or not (seqs_dirs or anim):
            return None
        if any(is_still(f) for f in anim[:_PROBE]):  # still GIFs are images
            return None
    return sorted(seqs_dirs + anim, key=lambda e: natural_key(e.name)), others


def folder_sequences(class_dirs: list[tuple[Path, str | None]], explicit: bool):
    """Records of a folder-per-class layout whose examples are sequences, with notes on what was left out; None
    when the layout holds still images (auto-detection; `explicit` = --modality frames takes what it can)."""
    records, notes = [], []
    for d, split in class_dirs:
        found = class_sequences(d, explicit)
        if found is None:
            return None
        seqs, others = found
        if not seqs:
            notes.append(f"class folder {d} holds no frame folders or animated GIF/WebP files, ignored")
        if others:
            notes.append(f"--modality frames: ignored {others} still image or audio files in {d}")
        records += [Record(str(s), label=d.name, split=split) for s in seqs]
    return records, notes


def is_sequence(path) -> bool:
    p = Path(path)
    return p.is_dir() or p.suffix.lower() in ANIMATED_EXTS


def all_sequences(records: list[Record]) -> bool:
    """True when every record is a frame folder or an animated file (a sample of them opened to check)."""
    if not records or any(r.member is not None or not is_sequence(r.path) for r in records):
        return False
    files = [r.path for r in records if not Path(r.path).is_dir()]
    return not any(is_still(f) for f in files[:_PROBE])


def find_sequences(p: Path) -> list[Path]:
    """Sequences to predict on under `p`: p itself when it is a frame folder, else the frame folders and animated
    files below it."""
    if _is_frame_folder(p) and not all(f.suffix.lower() in ANIMATED_EXTS for f in frame_files(p)):
        return [p]
    out = []
    for e in sorted(p.iterdir(), key=lambda e: natural_key(e.name)):
        if e.name.startswith("."):
            continue
        if e.is_dir():
            out += find_sequences(e)
        elif e.suffix.lower() in ANIMATED_EXTS:
            out.append(e)
    return out


def sequence_info(path) -> dict:
    """Header facts of one sequence, nothing decoded: width, height, mode, format, frames. CorruptFileError when it
    cannot be read or its frames differ in size (what decoding would refuse)."""
    p = Path(path)
    if p.is_dir():
        files = frame_files(p)
        if not files:
            raise CorruptFileError(str(p), "frame folder holds no images")
        infos = []
        for f in files:
            try:
                infos.append(image_info(str(f)))
            except CorruptFileError as e:
                raise CorruptFileError(str(p), f"frame {f.name}: {e.reason}") from None
        _same_size(p, [(i["width"], i["height"]) for i in infos])
        return {**infos[0], "frames": len(files)}
    try:
        with Image.open(p) as im:
            return {"width": im.size[0], "height": im.size[1], "mode": im.mode, "format": im.format,
                    "frames": int(getattr(im, "n_frames", 1))}
    except Exception as e:  # noqa: BLE001
        raise CorruptFileError(str(p), f"not a readable animation: {type(e).__name__}: {e}") from None


def _same_size(d: Path, sizes: list[tuple[int, int]]) -> None:
    count: dict[tuple[int, int], int] = {}
    for wh in sizes:
        count[wh] = count.get(wh, 0) + 1
    if len(count) > 1:
        listed = ", ".join(f"{w}x{h} ({n} frame{'s' * (n > 1)})" for (w, h), n in sorted(count.items()))
        raise CorruptFileError(str(d), f"frame folder mixes frame sizes: {listed}; give every frame of a clip "
                                       f"one size")


# --- decoding ----------------------------------------------------------------------------------------------------

def sample_indices(n: int, count: int) -> list[int]:
    """`count` frame indices of a sequence of n: evenly spread over it, or all of it and then its last frame."""
    if n >= count:
        return [round(i * (n - 1) / (count - 1)) for i in range(count)] if count > 1 else [(n - 1) // 2]
    return list(range(n)) + [n - 1] * (count - n)


def decode_sequence(record: Record, *, count: int, size: int, channels: int, resize: str,
                    max_pixels: int) -> tuple[torch.Tensor, int]:
    """(uint8 [count, channels, size, size], the sequence's true number of frames)."""
    p = Path(record.path)
    if p.is_dir():
        return _decode_folder(p, count, size, channels, resize, max_pixels)
    return _decode_animated(p, count, size, channels, resize, max_pixels)


def _decode_folder(d: Path, count, size, channels, resize, max_pixels):
    try:
        files = frame_files(d)
    except OSError as e:
        raise CorruptFileError(str(d), f"frame folder cannot be read: {e}") from None
    if not files:
        raise CorruptFileError(str(d), "frame folder holds no images")
    sizes = []
    for f in files:
        try:
            i = image_info(str(f))
        except CorruptFileError as e:
            raise CorruptFileError(str(d), f"frame {f.name}: {e.reason}") from None
        sizes.append((i["width"], i["height"]))
    _same_size(d, sizes)
    out = torch.empty((count, channels, size, size), dtype=torch.uint8)
    done: dict[int, int] = {}
    for t, i in enumerate(sample_indices(len(files), count)):
        if i in done:
            out[t] = out[done[i]]
            continue
        try:
            out[t] = decode_image(Record(str(files[i])), size=size, channels=channels, resize=resize,
                                  max_pixels=max_pixels)
        except CorruptFileError as e:
            raise CorruptFileError(str(d), f"frame {files[i].name}: {e.reason}") from None
        done[i] = t
    return out, len(files)


def _decode_animated(path: Path, count, size, channels, resize, max_pixels):
    return _animation(path, str(path), count, size, channels, resize, max_pixels)


def decode_animation_bytes(data: bytes, *, count: int, size: int, channels: int, resize: str,
                           max_pixels: int, name: str = "upload") -> tuple[torch.Tensor, int]:
    """An animated GIF/WebP (or a still image: one frame, repeated) held in memory, as decode_sequence gives it:
    (uint8 [count, channels, size, size], its true number of frames). For uploads (seehear serve)."""
    import io

    return _animation(io.BytesIO(data), name, count, size, channels, resize, max_pixels)


def _animation(src, name: str, count, size, channels, resize, max_pixels):
    try:
        with Image.open(src) as im:
            w, h = im.size
            if max_pixels and w * h > max_pixels:
                raise CorruptFileError(name, f"frames are {w}x{h} = {w * h:,} pixels, over data.max_image_pixels="
                                             f"{max_pixels:,}")
            n = int(getattr(im, "n_frames", 1))
            want = sample_indices(n, count)
            got: dict[int, torch.Tensor] = {}
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                if i in want:
                    got[i] = fit_image(frame, size=size, channels=channels, resize=resize)
                if i >= want[-1]:
                    break
    except CorruptFileError:
        raise
    except FileNotFoundError:
        raise CorruptFileError(name, "file not found") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, EOFError ... on damaged files
        raise CorruptFileError(name, f"damaged animation: {type(e).__name__}: {e}") from None
    if len(got) < len(set(want)):
        raise CorruptFileError(name, f"animation ends after {len(got)} of its {n} frames (truncated?)")
    return torch.stack([got[i] for i in want]), n


def length_summary(lengths: torch.Tensor, count: int) -> dict:
    """What sampling and padding did to the sequences' true lengths (for meta.json)."""
    if not len(lengths):
        return {"count": count}
    v = lengths.float()
    return {"count": count, "min": int(lengths.min()), "median": float(v.median()), "max": int(lengths.max()),
            "sampled": int((lengths > count).sum()), "padded": int((lengths < count).sum())}

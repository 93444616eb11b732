"""Generated datasets for tests and the demo: nothing is downloaded.

Each is learnable (a small model should beat chance clearly) and written in a layout load_source reads.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from seehear.errors import DataError, MissingToolError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "bar", "star")
# English voices of espeak-ng 1.51 that sound clearly different (accents), plus female variants (+f2/+f3).
VOICES = ("en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en+f3", "en-us+f2")


def make_digit_images(out_dir, per_class: int | None = None) -> Path:
    """sklearn's 8x8 digits (ships with sklearn), upscaled to 32x32 grayscale PNGs in folders '0'..'9'."""
    from sklearn.datasets import load_digits

    d = load_digits()
    out = Path(out_dir)
    seen: dict[int, int] = {}
    for i, (img, y) in enumerate(zip(d.images, d.target)):
        y = int(y)
        if per_class is not None and seen.get(y, 0) >= per_class:
            continue
        seen[y] = seen.get(y, 0) + 1
        a = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        (out / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(a, "L").resize((32, 32), Image.Resampling.BILINEAR).save(out / str(y) / f"{i:04d}.png")
    return out


def make_shape_images(out_dir, classes: int = 3, per_class: int = 20, size: int = 32, seed: int = 0,
                      plain: bool = False) -> Path:
    """Coloured shapes (class = shape) at random positions and scales, random colours, pixel noise. plain: light
    shapes on a dark ground instead (what a few seconds of self-supervised training can tell apart)."""
    if not 2 <= classes <= len(SHAPES):
        raise DataError(f"make_shape_images: classes must be 2..{len(SHAPES)}, got {classes}")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    for name in SHAPES[:classes]:
        (out / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            _shape_image(rng, name, size, plain=plain).save(out / name / f"{name}_{j:03d}.png")
    return out


def _shape_image(rng, name: str, size: int, plain: bool = False) -> Image.Image:
    """plain: a light shape on a dark ground (easier than random colours: learned in a few epochs)."""
    bg, fg = ((int(rng.integers(0, 60)),) * 3, (int(rng.integers(190, 256)),) * 3) if plain \
        else _contrasting_colours(rng)
    im = Image.new("RGB", (size, size), bg)
    r = size * rng.uniform(0.22, 0.36)
    cx, cy = size / 2 + rng.uniform(-1, 1, 2) * (size / 2 - r - 1)
    _draw(ImageDraw.Draw(im), name, cx, cy, r, fg, max(1, round(size / 12)))
    a = np.asarray(im, dtype=np.float32) + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _contrasting_colours(rng):
    while True:
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if abs(_luma(bg) - _luma(fg)) > 70:
            return tuple(int(v) for v in bg), tuple(int(v) for v in fg)


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _draw(d: ImageDraw.ImageDraw, shape, cx, cy, r, fg, line):
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=fg)
    elif shape == "square":
        d.rectangle(box, fill=fg)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fg)
    elif shape == "cross":
        d.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=fg)
        d.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=fg)
    elif shape == "ring":
        d.ellipse(box, outline=fg, width=line * 2)
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fg)
    elif shape == "bar":
        d.rectangle((cx - r, cy - r / 4, cx + r, cy + r / 4), fill=fg)
    else:  # star: five points
        ang = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        d.polygon([(cx + q * np.cos(a), cy - q * np.sin(a)) for a, q in zip(ang, rad)], fill=fg)


def make_tones(out_dir, classes: int = 3, per_class: int = 10, sample_rate: int = 16000, seconds: float = 1.0,
               seed: int = 0) -> Path:
    """WAV folder per class; class = pitch (a fourth apart), with jitter, harmonics, random onset and noise."""
    if classes < 2:
        raise DataError(f"make_tones: classes must be at least 2, got {classes}")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    for k in range(classes):
        f0 = 220.0 * 2 ** (k * 5 / 12)
        d = out / f"{round(f0)}hz"
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            sf.write(d / f"tone{k}_{j:03d}.wav", _tone(rng, f0, t, seconds), sample_rate, subtype="PCM_16")
    return out


def _tone(rng, f0: float, t: np.ndarray, seconds: float) -> np.ndarray:
    f = f0 * rng.uniform(0.98, 1.02)  # jitter well under the gap between classes
    h2, h3 = rng.uniform(0, 0.5, 2)
    x = np.sin(2 * np.pi * f * t) + h2 * np.sin(4 * np.pi * f * t) + h3 * np.sin(6 * np.pi * f * t)
    on = rng.uniform(0, 0.3) * seconds
    dur = rng.uniform(0.4, 0.65) * seconds
    env = np.clip(np.minimum((t - on) / 0.02, (on + dur - t) / 0.02), 0, 1)
    x = x * env / np.abs(x).max() * rng.uniform(0.3, 0.8)
    x = x + rng.normal(0, 10 ** (-rng.uniform(20, 35) / 20) * 0.5, len(t))
    return np.clip(x, -1, 1).astype(np.float32)


def make_pairs(out_dir, classes: int = 3, per_class: int = 30, *, noisy_image: float = 0.3,
               noisy_audio: float = 0.3, size: int = 32, sample_rate: int = 16000, seconds: float = 0.5,
               seed: int = 0) -> Path:
    """Audio-image pairs: a light shape on a dark ground (class = shape) with a tone (class = pitch, as make_tones). A share of
    the pairs has an uninformative image (noise, no shape) and another share an uninformative recording (noise,
    no tone), never both, so only the two together recognise every pair. Writes images/, audio/ and pairs.csv
    (image, audio, label, condition = clean | image_noise | audio_noise); returns the manifest's path."""
    if not 2 <= classes <= len(SHAPES):
        raise DataError(f"make_pairs: classes must be 2..{len(SHAPES)}, got {classes}")
    if noisy_image + noisy_audio > 1:
        raise DataError("make_pairs: noisy_image + noisy_audio must be at most 1")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    rows = ["image,audio,label,condition"]
    for k, name in enumerate(SHAPES[:classes]):
        for j in range(per_class):
            u = rng.uniform()
            cond = "image_noise" if u < noisy_image else "audio_noise" if u < noisy_image + noisy_audio else "clean"
            img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) \
                if cond == "image_noise" else _shape_image(rng, name, size, plain=True)
            wav = (rng.normal(0, 0.2, len(t)).clip(-1, 1).astype(np.float32) if cond == "audio_noise"
                   else _tone(rng, 220.0 * 2 ** (k * 5 / 12), t, seconds))
            stem = f"{name}_{j:03d}"
            img.save(out / "images" / f"{stem}.png")
            sf.write(out / "audio" / f"{stem}.wav", wav, sample_rate, subtype="PCM_16")
            rows.append(f"images/{stem}.png,audio/{stem}.wav,{name},{cond}")
    (out / "pairs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out / "pairs.csv"


def require_espeak() -> str:
    """Path of espeak-ng, or MissingToolError saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingToolError("espeak-ng is not installed: run `apt-get install -y espeak-ng` (Debian/Ubuntu)")
    return exe


def make_spoken_words(out_dir, words, voices=VOICES, speeds=(130, 160, 190), pitches=(35, 50, 65), *,
                      workers: int = 0) -> Path:
    """Spoken words via espeak-ng, files `{word}_{voice}_{speed}_{pitch}.wav` in ONE flat folder, so that
    `--label-pattern '(?P<label>[a-z]+)_(?P<speaker>[^_]+)_'` gives label = word and speaker = voice.
    Existing files are kept (re-running the demo is cheap)."""
    exe = require_espeak()
    words = list(words)
    bad = [w for w in words if not re.fullmatch(r"[a-z]+", w)]
    if bad or not words:
        raise DataError(f"make_spoken_words: words must be lowercase letters a-z (got {bad or 'none'})")
    bad = [v for v in voices if "_" in v or "/" in v]
    if bad:
        raise DataError(f"make_spoken_words: voice names cannot hold '_' or '/': {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(w, v, s, p) for w in words for v in voices for s in speeds for p in pitches]

    def speak(job):
        w, v, s, p = job
        return _speak(exe, out / f"{w}_{v}_{s}_{p}.wav", w, v, ["-s", str(s), "-p", str(p)])

    _speak_all(speak, jobs, workers)
    return out


def _speak(exe: str, f: Path, text: str, voice: str, flags: list[str]) -> str | None:
    """espeak-ng says `text` into WAV file f (kept if already there); returns an error line, or None."""
    if f.is_file() and f.stat().st_size > 44:
        return None
    tmp = f.with_name(f".{f.name}")  # hidden while written: an interrupted run leaves no half file
    r = subprocess.run([exe, "-v", voice, *flags, "-w", str(tmp), text], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        return f"voice {voice!r}: {(r.stderr or r.stdout).strip() or f'exit {r.returncode}'}"
    os.replace(tmp, f)
    return None


def _speak_all(speak, jobs, workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        errors = [e for e in pool.map(speak, jobs) if e]
    if errors:
        raise DataError(f"espeak-ng failed for {len(errors)} of {len(jobs)} files ({errors[0]}); "
                        f"list voices with `espeak-ng --voices=en`")


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def make_spoken_sentences(out_dir, *, train: int = 120, test: int = 20, words=DIGIT_WORDS, min_words: int = 2,
                          max_words: int = 4, voices=("en", "en-us", "en+f3"), speeds=(140, 170), seed: int = 0,
                          workers: int = 0) -> Path:
    """Sentences of random words spoken by espeak-ng, as Kaldi dirs train/ and test/ (wav.scp, text, utt2spk;
    speaker = voice): a speech-to-text data set that a small model learns in a minute. Existing files are kept."""
    exe = require_espeak()
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    jobs = []
    for split, n in (("train", train), ("test", test)):
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            text = " ".join(rng.choice(list(words), int(rng.integers(min_words, max_words + 1))))
            voice, speed = voices[i % len(voices)], int(speeds[int(rng.integers(len(speeds)))])
            jobs.append((split, f"{voice.replace('+', '-')}-{split}-{i:04d}", voice, speed, text))

    def speak(job):
        split, utt, voice, speed, text = job
        return _speak(exe, out / split / f"{utt}.wav", text, voice, ["-s", str(speed)])

    _speak_all(speak, jobs, workers)
    for split in ("train", "test"):
        rows = [j for j in jobs if j[0] == split]
        (out / split / "wav.scp").write_text("".join(f"{u}\t{split}/{u}.wav\n" for _, u, _, _, _ in rows))
        (out / split / "text").write_text("".join(f"{u}\t{t}\n" for _, u, _, _, t in rows))
        (out / split / "utt2spk").write_text("".join(f"{u}\t{v.replace('+', '-')}\n" for _, u, v, _, _ in rows))
    return out


DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def moving_square_frames(direction: str, rng, frames: int = 8, size: int = 16) -> list[np.ndarray]:
    """One clip: a bright square moving `direction` by size/8 pixels a frame on a noisy background that wraps around
    (a torus). Every frame's position is uniform over the image, whatever the class: no single frame, and no
    unordered set of frames, tells left from right (the same frames played backwards); only the order does."""
    dx, dy = DIRECTIONS[direction]
    side, step = max(2, size // 4), max(1, size // 8)
    x0, y0 = rng.integers(0, size, 2)
    bright = rng.uniform(180, 255)
    out = []
    for t in range(frames):
        a = rng.normal(40, 12, (size, size))
        ys = (y0 + dy * step * t + np.arange(side)) % size
        xs = (x0 + dx * step * t + np.arange(side)) % size
        a[np.ix_(ys, xs)] = bright
        out.append(np.clip(a, 0, 255).astype(np.uint8))
    return out


def make_moving_squares(out_dir, per_class: int = 20, frames: int = 8, size: int = 16, gif: bool = False,
                        seed: int = 0) -> Path:
    """Image sequences for the frames modality: class = the direction a square moves (right, left, down, up).
    gif=False: a folder of numbered PNG frames per clip (out/<class>/clip_000/00.png ...); gif=True: an animated
    GIF per clip (out/<class>/clip_000.gif)."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    for name in DIRECTIONS:
        (out / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            ims = [Image.fromarray(a, "L") for a in moving_square_frames(name, rng, frames, size)]
            if gif:
                ims[0].save(out / name / f"clip_{j:03d}.gif", save_all=True, append_images=ims[1:], duration=80,
                            loop=0)
            else:
                clip = out / name / f"clip_{j:03d}"
                clip.mkdir(exist_ok=True)
                for t, im in enumerate(ims):
                    im.save(clip / f"{t:02d}.png")
    return out

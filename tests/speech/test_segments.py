"""speech_segments / read_blocks on real (espeak-ng) speech placed at known times in noise."""
from __future__ import annotations

import subprocess
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from seehear.data.synth import require_espeak
from seehear.errors import ConfigError, CorruptFileError
from seehear.speech.segments import audio_duration, read_blocks, speech_segments

SR = 16000
PHRASES = ("the quick brown fox jumps over the lazy dog", "hello world this is a test", "one two three four five")
NOISE = 0.003  # light background hiss, about -50 dBFS


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    """Each phrase as 16 kHz float32, trimmed to its first and last audible sample (so we know where speech is)."""
    exe, d = require_espeak(), tmp_path_factory.mktemp("espeak")
    out = []
    for i, text in enumerate(PHRASES):
        subprocess.run([exe, "-v", "en", "-w", str(d / f"{i}.wav"), text], check=True, capture_output=True)
        x, sr = sf.read(d / f"{i}.wav", dtype="float32")
        assert sr == 22050
        x = resample_poly(x, 320, 441).astype(np.float32)
        loud = np.flatnonzero(np.abs(x) > 1e-3)
        out.append(x[loud[0]:loud[-1] + 1])
    return out


def _noise(rng, seconds):
    return rng.normal(0, NOISE, int(seconds * SR)).astype(np.float32)


def _compose(phrases, gaps, lead=1.0, seed=0):
    """Noise, phrase, gap, phrase, ... -> (audio, [(start, end)] of each phrase in seconds)."""
    rng = np.random.default_rng(seed)
    parts, truth, n = [_noise(rng, lead)], [], int(lead * SR)
    for x, gap in zip(phrases, gaps):
        truth.append((n / SR, (n + len(x)) / SR))
        parts += [x + _noise(rng, len(x) / SR), _noise(rng, gap)]
        n += len(x) + int(gap * SR)
    return np.concatenate(parts), truth


@pytest.fixture(scope="module")
def speech(phrases, tmp_path_factory):
    """Three phrases separated by 1.5 s and 1.0 s of noise, as 16 kHz FLAC."""
    y, truth = _compose(phrases, gaps=(1.5, 1.0, 2.0))
    path = tmp_path_factory.mktemp("speech") / "three.flac"
    sf.write(path, y, SR)
    return path, y, truth


def _spans(segs):
    """Flat [start0, end0, start1, ...]: what pytest.approx compares."""
    return [t for s in segs for t in (s.start, s.end)]


def test_segments_match_where_speech_was_put(speech):
    path, y, truth = speech
    raw = list(speech_segments(path, speech_pad_ms=0))
    assert len(raw) == len(truth)
    for s, (a, b) in zip(raw, truth):
        assert abs(s.start - a) < 0.3 and abs(s.end - b) < 0.3, (_spans(raw), truth)
    padded = list(speech_segments(path))  # default 150 ms padding widens each segment, never overlapping
    assert len(padded) == len(truth)
    for p, r in zip(padded, raw):
        assert p.start <= r.start - 0.1 and p.end >= r.end + 0.1
    assert all(a.end <= b.start for a, b in zip(padded, padded[1:]))
    for s in padded:  # samples are exactly the file's audio between start and end
        assert s.samples.dtype == np.float32 and s.samples.ndim == 1
        assert len(s.samples) == round((s.end - s.start) * SR)
        np.testing.assert_allclose(s.samples, y[round(s.start * SR):round(s.end * SR)], atol=1e-4)


def test_block_size_does_not_change_segments(speech):
    """Speech crossing block edges: the VAD state and the sample buffer are carried across blocks."""
    path = speech[0]
    big = list(speech_segments(path))
    small = list(speech_segments(path, block_seconds=0.37))
    assert _spans(small) == pytest.approx(_spans(big), abs=1e-6)
    for a, b in zip(big, small):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_short_pause_does_not_end_a_segment(phrases, tmp_path):
    y, truth = _compose(phrases[:2], gaps=(0.15, 1.0))
    sf.write(tmp_path / "two.wav", y, SR)
    segs = list(speech_segments(tmp_path / "two.wav", min_silence_ms=400))
    assert len(segs) == 1
    assert abs(segs[0].start - truth[0][0]) < 0.3 and abs(segs[0].end - truth[1][1]) < 0.3


def test_long_speech_is_cut_in_quiet_places(phrases, tmp_path):
    # ~9 s of continuous speech: phrases repeated with 0.2 s pauses, shorter than min_silence_ms
    y, truth = _compose([phrases[0], phrases[1], phrases[2], phrases[0]], gaps=(0.2, 0.2, 0.2, 1.0))
    sf.write(tmp_path / "long.wav", y, SR)
    assert len(list(speech_segments(tmp_path / "long.wav", max_seconds=60))) == 1
    segs = list(speech_segments(tmp_path / "long.wav", max_seconds=3.0))
    assert len(segs) >= 3
    assert all(s.end - s.start <= 3.0 + 1e-9 for s in segs)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))  # pieces of one segment: nothing lost
    assert segs[0].start < truth[0][0] and segs[-1].end > truth[-1][1] - 0.3
    speech_rms = np.sqrt(np.mean(y[int(truth[0][0] * SR):int(truth[-1][1] * SR)] ** 2))
    for a in segs[:-1]:  # each cut sits in a pause, not mid-word
        c = round(a.end * SR)
        assert np.sqrt(np.mean(y[c - 800:c + 800] ** 2)) < 0.2 * speech_rms


def test_silence_and_empty_files_give_nothing(tmp_path):
    rng = np.random.default_rng(3)
    sf.write(tmp_path / "zeros.wav", np.zeros(5 * SR, np.float32), SR)
    sf.write(tmp_path / "hiss.flac", _noise(rng, 5.0), SR)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    for name in ("zeros.wav", "hiss.flac", "empty.wav"):
        assert list(speech_segments(tmp_path / name)) == []
    assert list(read_blocks(tmp_path / "empty.wav")) == []
    assert audio_duration(tmp_path / "empty.wav") == 0.0
    assert audio_duration(tmp_path / "zeros.wav") == pytest.approx(5.0)


def test_stereo_44k_comes_out_16k_mono(speech, tmp_path):
    path, y, truth = speech
    left = resample_poly(y, 441, 160).astype(np.float32)
    stereo = np.stack([left, 0.5 * left], axis=1)  # mono mix = 0.75 * left
    sf.write(tmp_path / "st.wav", stereo, 44100, subtype="FLOAT")
    blocks = list(read_blocks(tmp_path / "st.wav", block_seconds=1.3))
    assert len(blocks) > 5 and all(b.ndim == 1 and b.dtype == np.float32 for b in blocks)
    got = np.concatenate(blocks)
    # block by block equals resampling the whole file at once: no clicks at block edges
    np.testing.assert_allclose(got, resample_poly(stereo.mean(axis=1), 160, 441), atol=1e-6)
    assert len(got) == int(np.ceil(len(left) * 16000 / 44100))
    assert audio_duration(tmp_path / "st.wav") == pytest.approx(len(left) / 44100)
    segs = list(speech_segments(tmp_path / "st.wav"))
    assert _spans(segs) == pytest.approx(_spans(speech_segments(path)), abs=0.1)
    assert len(segs[0].samples) == round((segs[0].end - segs[0].start) * 16000)


def test_8khz_output(speech):
    path, _, truth = speech
    segs = list(speech_segments(path, sample_rate=8000, speech_pad_ms=0))
    assert len(segs) == len(truth)
    assert all(abs(s.start - a) < 0.3 and abs(len(s.samples) / 8000 - (s.end - s.start)) < 1e-3
               for s, (a, _) in zip(segs, truth))
    with pytest.raises(ConfigError, match="8000 or 16000"):
        next(speech_segments(path, sample_rate=22050))


def test_unreadable_files_raise_corrupt_file_error(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "zero.flac").write_bytes(b"")
    for p, why in ((bad, "not readable audio"), (tmp_path / "zero.flac", "empty file"),
                   (tmp_path / "missing.wav", "file not found")):
        with pytest.raises(CorruptFileError, match=why) as e:
            list(speech_segments(p))
        assert str(p) in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(CorruptFileError):
            audio_duration(p)


def test_files_segmented_at_once_do_not_share_vad_state(speech, phrases, tmp_path):
    """One cached model, per-file state: interleaved generators and threads give the same answers."""
    y2, _ = _compose(phrases[::-1], gaps=(0.8, 1.2, 0.5), seed=5)
    sf.write(tmp_path / "other.wav", y2, SR)
    paths = [speech[0], tmp_path / "other.wav"]
    alone = [_spans(speech_segments(p, block_seconds=1.0)) for p in paths]
    gens, mixed = [speech_segments(p, block_seconds=1.0) for p in paths], [[], []]
    while gens[0] or gens[1]:
        for i, g in enumerate(gens):
            if g is not None and (s := next(g, None)) is not None:
                mixed[i] += [s.start, s.end]
            elif g is not None:
                gens[i] = None
    assert mixed == alone
    threaded = [None, None]
    ts = [threading.Thread(target=lambda i=i: threaded.__setitem__(i, _spans(speech_segments(paths[i]))))
          for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert threaded == alone


def _write_long(path, minutes, phrase):
    """Noise with a phrase every 5 s, written 10 s at a time: the test itself never holds the whole file."""
    rng = np.random.default_rng(1)
    with sf.SoundFile(path, "w", SR, 1, format="FLAC") as f:
        for _ in range(minutes * 6):
            c = _noise(rng, 10.0)
            c[SR:SR + len(phrase)] += phrase
            c[6 * SR:6 * SR + len(phrase)] += phrase
            f.write(c)


def _peak_while_segmenting(path):
    tracemalloc.start()
    try:
        t, n = time.perf_counter(), sum(1 for _ in speech_segments(path))
        return n, tracemalloc.get_traced_memory()[1], time.perf_counter() - t
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_with_file_length(phrases, tmp_path):
    _write_long(tmp_path / "1min.flac", 1, phrases[1])
    _write_long(tmp_path / "10min.flac", 10, phrases[1])
    n1, peak1, _ = _peak_while_segmenting(tmp_path / "1min.flac")
    n10, peak10, seconds = _peak_while_segmenting(tmp_path / "10min.flac")
    assert (n1, n10) == (12, 120)  # every phrase found, nothing else
    # 10 minutes of 16 kHz float32 would be 38 MB; a 30 s block is 1.9 MB
    assert peak10 < 1.5 * peak1 + 1_000_000, (peak1, peak10)
    assert peak10 < 15_000_000
    print(f"VAD on 10 min: {seconds:.1f} s = {600 / seconds:.0f}x real time; peak {peak1 / 1e6:.1f} MB (1 min) "
          f"vs {peak10 / 1e6:.1f} MB (10 min)")

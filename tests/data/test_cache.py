"""decode_all: one tensor for the whole set, corrupt files skipped and listed, the rest kept in order."""
import struct

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from seehear.config import RunConfig
from seehear.data.cache import decode_all
from seehear.data.decode import decode_image
from seehear.data.records import Record
from seehear.errors import ConfigError


def test_images_skip_corrupt_keep_rest(tmp_path):
    recs = []
    for i in range(5):
        f = tmp_path / f"{i}.png"
        if i == 2:
            f.write_text("not an image")
        else:
            Image.new("RGB", (10 + i, 12), (i * 40, 0, 0)).save(f)
        recs.append(Record(str(f), label="ab"[i % 2]))
    cfg = RunConfig.from_dict({"image": {"size": 8, "channels": 3}})
    d = decode_all(recs, cfg, "image", workers=2, progress=False)
    assert d.x.dtype == torch.uint8 and d.x.shape == (4, 3, 8, 8)
    assert d.keep == [0, 1, 3, 4]
    assert len(d.skipped) == 1 and d.skipped[0][0] == recs[2].key and "not an image" in d.skipped[0][1]
    for row, i in enumerate(d.keep):  # row i of x is exactly what decode_image gives for records[keep[i]]
        assert torch.equal(d.x[row], decode_image(recs[i], size=8, channels=3, resize="stretch", max_pixels=10**8))


def test_audio_int16_scaling_and_clamp(tmp_path):
    sr = 8000
    sf.write(tmp_path / "half.wav", np.full(sr, 0.5, np.float32), sr, subtype="FLOAT")
    sf.write(tmp_path / "loud.wav", np.full(sr // 2, 1.5, np.float32), sr, subtype="FLOAT")  # > full scale
    (tmp_path / "empty.wav").write_bytes(b"")
    recs = [Record(str(tmp_path / n)) for n in ("half.wav", "empty.wav", "loud.wav")]
    cfg = RunConfig.from_dict({"audio": {"sample_rate": sr, "clip_seconds": 1.0, "crop": "start"}})
    d = decode_all(recs, cfg, "audio", workers=1, progress=False)
    assert d.x.dtype == torch.int16 and d.x.shape == (2, sr) and d.keep == [0, 2]
    assert d.x[0].eq(16384).all()  # round(0.5 * 32767)
    assert d.x[1, : sr // 2].eq(32767).all() and d.x[1, sr // 2:].eq(0).all()  # clamped, then zero-padded
    assert d.skipped == [(recs[1].key, "empty file (zero bytes)")]


def test_many_idx_members_with_progress(tmp_path):
    n = 260  # above the progress threshold and many chunks
    imgs = (np.arange(n)[:, None, None] * np.ones((1, 6, 6))).astype(np.uint8)
    f = tmp_path / "x-images-idx3-ubyte"
    f.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 6, 6) + imgs.tobytes())
    recs = [Record(str(f), label=str(i % 3), member=i) for i in range(n)]
    cfg = RunConfig.from_dict({"image": {"size": 6, "channels": 1}})
    d = decode_all(recs, cfg, "image", workers=0, progress=True)
    assert d.x.shape == (n, 1, 6, 6) and d.skipped == [] and d.keep == list(range(n))
    assert torch.equal(d.x[:, 0, 0, 0], torch.arange(n).to(torch.uint8))  # order preserved across threads


def test_bad_modality_and_clip():
    with pytest.raises(ConfigError):
        decode_all([], RunConfig(), "video")
    with pytest.raises(ConfigError, match="clip_seconds"):
        decode_all([], RunConfig.from_dict({"audio": {"clip_seconds": 0.0}}), "audio")

"""decode_image / decode_audio: formats, modes, resize and crop policies, and every way a file can be bad."""
import gzip
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from seehear.data.decode import audio_info, decode_audio, decode_image, image_info
from seehear.data.records import Record
from seehear.errors import ConfigError, CorruptFileError


def img(path, size=32, channels=3, resize="stretch", max_pixels=10_000_000, member=None):
    return decode_image(Record(str(path), member=member), size=size, channels=channels, resize=resize,
                        max_pixels=max_pixels)


def aud(path, sr=16000, n=None, crop="center"):
    return decode_audio(Record(str(path)), sample_rate=sr, num_samples=n, crop=crop)


# --- images -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["png", "jpg", "bmp", "pgm", "webp"])
def test_formats_decode_to_uint8_chw(tmp_path, fmt):
    f = tmp_path / f"x.{fmt}"
    Image.new("L" if fmt == "pgm" else "RGB", (20, 10), 200 if fmt == "pgm" else (200, 200, 200)).save(f)
    x = img(f, size=16)
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16)
    assert abs(int(x.float().mean()) - 200) <= 3
    assert img(f, size=8, channels=1).shape == (1, 8, 8)


def test_modes(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red → white background
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgba.save(tmp_path / "rgba.png")
    x = img(tmp_path / "rgba.png", size=4)
    assert x[:, 1, 1].tolist() == [255, 255, 255] and x[:, 0, 0].tolist() == [0, 0, 255]

    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.save(tmp_path / "p.png")
    assert img(tmp_path / "p.png", size=4)[:, 2, 2].tolist() == [10, 200, 30]

    a16 = np.full((4, 4), 65535, np.uint16)
    a16[0, 0] = 0
    Image.fromarray(a16).save(tmp_path / "i16.png")
    assert image_info(tmp_path / "i16.png")["mode"].startswith("I")
    x16 = img(tmp_path / "i16.png", size=4, channels=1)
    assert x16[0, 1, 1] == 255 and x16[0, 0, 0] == 0

    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    r, g, b = img(tmp_path / "cmyk.jpg", size=4)[:, 2, 2].tolist()
    assert r > 200 and g < 60 and b < 60

    Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    assert img(tmp_path / "f.tif", size=4, channels=1)[0, 0, 0] == 128


def test_resize_policies(tmp_path):
    a = np.zeros((10, 40), np.uint8)
    a[:, :20] = 255  # left half white
    Image.fromarray(a).save(tmp_path / "wide.png")
    stretch = img(tmp_path / "wide.png", size=8, channels=1, resize="stretch")[0]
    assert stretch[:, 0].min() == 255 and stretch[:, -1].max() == 0
    pad = img(tmp_path / "wide.png", size=8, channels=1, resize="pad")[0]
    assert pad[0].max() == 0 and pad[-1].max() == 0 and pad[4, 0] == 255  # black bars above and below
    crop = img(tmp_path / "wide.png", size=8, channels=1, resize="crop")[0]
    assert crop[:, 0].min() == 255 and crop[:, -1].max() == 0 and crop[0].max() == 255
    with pytest.raises(ConfigError):
        img(tmp_path / "wide.png", resize="zoom")


def test_bad_images(tmp_path):
    Image.new("RGB", (64, 64), 9).save(tmp_path / "ok.jpg", quality=95)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("hello, not a png")
    for name, reason in (("cut.jpg", "damaged"), ("text.png", "not an image"), ("gone.png", "not found")):
        with pytest.raises(CorruptFileError, match=reason) as e:
            img(tmp_path / name)
        assert e.value.path == str(tmp_path / name)


def test_over_max_pixels_refused_before_decoding(tmp_path):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    with pytest.raises(CorruptFileError, match="over data.max_image_pixels"):
        img(tmp_path / "big.png", max_pixels=10_000)
    # a PNG header claiming 100000 x 100000 pixels with no data behind it: only the header may be read
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(CorruptFileError, match="decompression bomb"):
        img(tmp_path / "bomb.png", max_pixels=50_000_000)


def test_idx_member(tmp_path):
    imgs = np.zeros((3, 4, 4), np.uint8)
    imgs[1] = 200
    data = bytes([0, 0, 8, 3]) + struct.pack(">3I", 3, 4, 4) + imgs.tobytes()
    with gzip.open(tmp_path / "x-images-idx3-ubyte.gz", "wb") as f:
        f.write(data)
    x = img(tmp_path / "x-images-idx3-ubyte.gz", size=8, channels=1, member=1)
    assert x.shape == (1, 8, 8) and int(x.min()) == 200
    assert int(img(tmp_path / "x-images-idx3-ubyte.gz", size=4, member=0).max()) == 0
    with pytest.raises(CorruptFileError, match="out of range"):
        img(tmp_path / "x-images-idx3-ubyte.gz", member=3)


# --- audio --------------------------------------------------------------------------------------------------------

def tone(n, sr, f=440.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


@pytest.mark.parametrize("ext,fmt,subtype", [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                                             ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")])
def test_audio_formats(tmp_path, ext, fmt, subtype):
    f = tmp_path / f"x.{ext}"
    sf.write(f, tone(16000, 16000), 16000, format=fmt, subtype=subtype)
    w = aud(f, n=16000)
    assert w.dtype == torch.float32 and w.shape == (16000,)
    assert 0.3 < float(w.abs().max()) < 0.7  # the tone survived the codec
    assert audio_info(f)["sample_rate"] == 16000


def test_resample_and_stereo_to_mono(tmp_path):
    sf.write(tmp_path / "8k.wav", tone(8000, 8000), 8000)
    assert aud(tmp_path / "8k.wav", sr=16000).shape == (16000,)
    st = np.stack([np.full(1000, 0.4), np.full(1000, 0.2)], axis=1).astype(np.float32)
    sf.write(tmp_path / "st.wav", st, 16000, subtype="FLOAT")
    w = aud(tmp_path / "st.wav")
    assert w.shape == (1000,) and torch.allclose(w, torch.full((1000,), 0.3), atol=1e-6)
    info = audio_info(tmp_path / "st.wav")
    assert info["channels"] == 2 and info["duration"] == pytest.approx(1000 / 16000)


def test_crops_and_padding(tmp_path):
    sr = 1000
    x = np.zeros(5 * sr, np.float32)
    x[: 5 * sr] = np.arange(5 * sr) / (10 * sr)  # a ramp tells where a window came from
    x[3800:4100] = 0.9  # the loud 'word'
    sf.write(tmp_path / "long.wav", x, sr, subtype="FLOAT")
    start = aud(tmp_path / "long.wav", sr=sr, n=500, crop="start")
    center = aud(tmp_path / "long.wav", sr=sr, n=500, crop="center")
    energy = aud(tmp_path / "long.wav", sr=sr, n=500, crop="energy")
    assert torch.allclose(start, torch.from_numpy(x[:500]))
    assert torch.allclose(center, torch.from_numpy(x[2250:2750]))  # read by seeking: must equal the full read
    assert (energy == 0.9).sum() == 300
    sf.write(tmp_path / "short.wav", np.ones(100, np.float32) * 0.5, sr, subtype="FLOAT")
    s_pad = aud(tmp_path / "short.wav", sr=sr, n=300, crop="start")
    c_pad = aud(tmp_path / "short.wav", sr=sr, n=300, crop="center")
    assert s_pad[:100].eq(0.5).all() and s_pad[100:].eq(0).all()
    assert c_pad[:100].eq(0).all() and c_pad[100:200].eq(0.5).all() and c_pad[200:].eq(0).all()
    with pytest.raises(ConfigError):
        aud(tmp_path / "short.wav", crop="middle")


def test_bad_audio(tmp_path):
    sf.write(tmp_path / "ok.wav", tone(4000, 16000), 16000)
    (tmp_path / "header_only.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:30])
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio at all, just some text" * 10)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    for name, reason in (("header_only.wav", "not readable"), ("zero.wav", "zero bytes"),
                         ("text.wav", "not readable"), ("empty.wav", "no samples"), ("gone.wav", "not found")):
        with pytest.raises(CorruptFileError, match=reason) as e:
            aud(tmp_path / name, n=1000)
        assert e.value.path == str(tmp_path / name)
    with pytest.raises(CorruptFileError):
        audio_info(tmp_path / "text.wav")
    # cut inside the data: libsndfile reads what is there; the rest is padding, not a failure
    (tmp_path / "cut.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[: 44 + 2 * 1000])
    cut = aud(tmp_path / "cut.wav", n=4000, crop="start")
    assert cut[:900].abs().max() > 0.3 and cut[1100:].abs().max() == 0


def test_bytes_variants_equal_the_file_ones(tmp_path):
    """decode_image_bytes / decode_audio_bytes (uploads held in memory) give what decoding the same file gives."""
    from seehear.data.decode import decode_audio_bytes, decode_image_bytes

    rng = np.random.default_rng(0)
    img = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(img)
    for resize in ("stretch", "pad", "crop"):
        want = decode_image(Record(str(img)), size=32, channels=1, resize=resize, max_pixels=10_000)
        got = decode_image_bytes(img.read_bytes(), size=32, channels=1, resize=resize, max_pixels=10_000)
        assert torch.equal(want, got)
    with pytest.raises(CorruptFileError, match="upload.*pixels"):
        decode_image_bytes(img.read_bytes(), size=32, channels=1, resize="stretch", max_pixels=1000)
    with pytest.raises(CorruptFileError, match="upload"):
        decode_image_bytes(img.read_bytes()[:60], size=32, channels=1, resize="stretch", max_pixels=10_000)
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.3 * rng.standard_normal((22050, 2))).astype(np.float32), 22050)
    want = decode_audio(Record(str(wav)), sample_rate=16000, num_samples=8000, crop="energy")
    got = decode_audio_bytes(wav.read_bytes(), sample_rate=16000, num_samples=8000, crop="energy", max_seconds=2)
    assert torch.equal(want, got)
    with pytest.raises(CorruptFileError, match="over the limit of 0.5 s"):  # from the header, before reading
        decode_audio_bytes(wav.read_bytes(), sample_rate=16000, num_samples=None, crop="start", max_seconds=0.5)
    with pytest.raises(CorruptFileError, match="upload: not readable audio"):
        decode_audio_bytes(b"RIFF1234WAVEjunk", sample_rate=16000, num_samples=None, crop="start")

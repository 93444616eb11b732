"""Image sequences (modality frames): listing, auto-detection, decoding to [N, T, C, H, W], bad clips skipped and
listed, and augmentation that moves all frames of a clip alike."""
import numpy as np
import pytest
import torch
from PIL import Image

from seehear.config import RunConfig
from seehear.data.cache import decode_all
from seehear.data.frames import sample_indices
from seehear.data.sources import list_files, load_source
from seehear.data.synth import DIRECTIONS, make_moving_squares, moving_square_frames
from seehear.errors import ConfigError, DataError
from seehear.features.augment import augment_sequences, check_frames_settings


def _cfg(count=8, size=16, channels=1):
    cfg = RunConfig()
    cfg.frames.count, cfg.image.size, cfg.image.channels, cfg.data.workers = count, size, channels, 1
    return cfg


def _clip(folder, values, size=8, names=None):
    """A frame folder whose frame i is a flat image of brightness values[i]."""
    folder.mkdir(parents=True)
    for i, v in enumerate(values):
        Image.new("L", (size, size), int(v)).save(folder / (names[i] if names else f"f{i}.png"))
    return folder


def _gif(path, values, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    ims = [Image.new("L", (size, size), int(v)) for v in values]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=50, loop=0)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return make_moving_squares(root / "folders", per_class=3), make_moving_squares(root / "gifs", per_class=3,
                                                                                    gif=True)


def test_folders_and_gifs_are_detected_and_decode_alike(clips):
    folders, gifs = clips
    a, b = load_source(folders), load_source(gifs)
    assert (a.modality, b.modality) == ("frames", "frames")
    assert a.labels == b.labels == sorted(DIRECTIONS) and len(a.records) == len(b.records) == 12
    da, db = decode_all(a.records, _cfg(), "frames"), decode_all(b.records, _cfg(), "frames")
    assert da.x.shape == db.x.shape == (12, 8, 1, 16, 16) and da.x.dtype == torch.uint8
    assert torch.equal(da.x, db.x)  # the GIF holds the same frames as the PNG folder, in the same order
    assert da.lengths.tolist() == [8] * 12 and not da.skipped


def test_frame_order_sampling_and_padding(tmp_path):
    # natural name order: f2 before f10; brightness 10 * index shows which frame landed where
    names = [f"f{i}.png" for i in range(10)]
    _clip(tmp_path / "long", [10 * i for i in range(10)], names=names)
    _clip(tmp_path / "short", [200, 210, 220])
    _gif(tmp_path / "anim.gif", [0, 50, 100, 150, 200, 250])
    recs = list_files([str(tmp_path / "long"), str(tmp_path / "short"), str(tmp_path / "anim.gif")], "frames").records
    d = decode_all(recs, _cfg(count=5, size=8), "frames")
    seen = d.x[:, :, 0, 4, 4].tolist()
    assert seen[0] == [10 * i for i in sample_indices(10, 5)] == [0, 20, 40, 70, 90]  # evenly over the clip
    assert seen[1] == [200, 210, 220, 220, 220]  # short: its last frame repeated
    assert seen[2] == [0, 50, 100, 200, 250]  # an animation sampled the same way (6 frames -> 0,1,2,4,5)
    assert d.lengths.tolist() == [10, 3, 6]


def test_mixed_sizes_and_corrupt_files_are_skipped_and_listed(clips, tmp_path):
    folders, _ = clips
    import shutil

    data = tmp_path / "data"
    shutil.copytree(folders, data)
    Image.new("L", (20, 20)).save(data / "up" / "clip_000" / "03.png")  # one frame of another size
    (data / "left" / "broken.gif").write_bytes(b"GIF89a\x10\x00 not really")
    (data / "down" / "clip_001" / "02.png").write_bytes(b"\x89PNG damaged")
    src = load_source(data)
    assert src.modality == "frames" and len(src.records) == 13  # a damaged file does not turn clips into images
    d = decode_all(src.records, _cfg(), "frames")
    reasons = dict(d.skipped)
    assert len(d.keep) == 10 and d.x.shape[0] == 10 and len(reasons) == 3
    mixed = reasons[str(data / "up" / "clip_000")]
    assert "mixes frame sizes" in mixed and "16x16 (7 frames)" in mixed and "20x20 (1 frame)" in mixed
    assert "\n" not in mixed
    assert "damaged animation" in reasons[str(data / "left" / "broken.gif")]
    assert reasons[str(data / "down" / "clip_001")].startswith("frame 02.png:")


def test_still_images_stay_images(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "png" / c).mkdir(parents=True)
        Image.new("L", (8, 8), 10).save(tmp_path / "png" / c / "x.png")
        _gif(tmp_path / "gif" / c / "one.gif", [30])  # a GIF of one frame is a still image
    assert load_source(tmp_path / "png").modality == "image"
    assert load_source(tmp_path / "gif").modality == "image"
    # named explicitly, the still GIFs are one-frame clips (padded to frames.count)
    src = load_source(tmp_path / "gif", modality="frames")
    assert src.modality == "frames"
    assert decode_all(src.records, _cfg(count=3, size=8), "frames").x[0, :, 0, 0, 0].tolist() == [30, 30, 30]
    with pytest.raises(DataError, match="no frame folders or animated"):
        load_source(tmp_path / "png", modality="frames")


def test_manifest_of_folders_and_predict_listing(clips, tmp_path):
    folders, gifs = clips
    rows = ["path,label"] + [f"{folders / c / 'clip_000'},{c}" for c in DIRECTIONS] + \
           [f"{gifs / c / 'clip_001.gif'},{c}" for c in DIRECTIONS]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    src = load_source(tmp_path / "m.csv")
    assert (src.kind, src.modality, len(src.records)) == ("manifest", "frames", 8)
    # predict: a frame folder is one clip; a folder of clips is searched; a still-image run would see images
    assert [r.path for r in list_files([str(folders / "up" / "clip_002")], "frames").records] == \
        [str(folders / "up" / "clip_002")]
    assert len(list_files([str(gifs)], "frames").records) == 12
    assert list_files([str(folders / "up" / "clip_002")]).modality == "image"


def test_augmentation_moves_every_frame_of_a_clip_alike():
    g = torch.Generator().manual_seed(0)
    one = torch.randint(0, 256, (6, 1, 3, 12, 12), generator=g, dtype=torch.uint8)
    x = one.expand(6, 5, 3, 12, 12).contiguous()  # every frame of a clip the same image
    cfg = _cfg().augment
    cfg.flip, cfg.crop_pad = True, 2
    y = augment_sequences(x, cfg, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y, y[:, :1].expand_as(y))  # still identical frames: no per-frame jitter
    assert not torch.equal(y, x)  # yet the clips did move


def test_frames_refuse_settings_they_cannot_use():
    cfg = _cfg()
    check_frames_settings(cfg)
    cfg.augment.policy = "randaugment"
    with pytest.raises(ConfigError, match="augment.policy"):
        check_frames_settings(cfg)


def test_no_single_frame_tells_the_direction():
    """The generator's promise: a frame's square position is uniform whatever the direction, and a clip played
    backwards is a clip of the opposite direction."""
    pos = {d: [] for d in DIRECTIONS}
    for d in DIRECTIONS:
        rng = np.random.default_rng(1)
        for _ in range(200):
            f = moving_square_frames(d, rng)[3]
            y, x = np.unravel_index(np.argmax(f), f.shape)
            pos[d] += [x, y]
    means = [np.mean(v) for v in pos.values()]
    assert max(means) - min(means) < 1.0  # all near the centre 7.5 of 0..15
    frames = moving_square_frames("right", np.random.default_rng(2))
    mask = [f > 150 for f in frames]
    shifts = [np.roll(mask[t], -2, axis=1) for t in range(1, len(mask))]
    assert all(np.array_equal(s, m) for s, m in zip(shifts, mask[:-1]))  # right by 2 px a frame


def test_an_animation_in_memory_decodes_as_its_file(clips):
    from seehear.data.frames import decode_animation_bytes, decode_sequence
    from seehear.data.records import Record
    from seehear.errors import CorruptFileError

    gif = sorted(clips[1].rglob("*.gif"))[0]
    kw = dict(count=8, size=16, channels=1, resize="stretch", max_pixels=10_000)
    a, n = decode_sequence(Record(str(gif)), **kw)
    b, m = decode_animation_bytes(gif.read_bytes(), **kw)
    assert n == m and torch.equal(a, b) and b.dtype == torch.uint8 and b.shape == (8, 1, 16, 16)
    with pytest.raises(CorruptFileError, match="over data.max_image_pixels"):
        decode_animation_bytes(gif.read_bytes(), **{**kw, "max_pixels": 10})
    with pytest.raises(CorruptFileError):
        decode_animation_bytes(gif.read_bytes()[:100], **kw)

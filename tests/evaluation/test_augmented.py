"""augmented.png (and for audio augmented_*.wav): written atomically into the run folder, showing examples of
every class as stored and as augmented."""
from __future__ import annotations

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from seehear.config import RunConfig
from seehear.evaluation.augmented import write_augmented_examples


def test_image_grid_is_a_png_of_every_class(tmp_path):
    cfg = RunConfig.from_dict({"augment": {"policy": "trivialaugment", "cutmix": 1.0}})
    x = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8)
    y = torch.tensor([0] * 36 + [1] * 3 + [2])  # skewed: the rare classes still appear
    paths = write_augmented_examples(x, y, ["a", "b", "c"], cfg, "image", tmp_path)
    assert paths == [tmp_path / "augmented.png"]
    with Image.open(paths[0]) as im:
        assert im.format == "PNG" and im.width > 400 and im.height > 200
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left


def test_audio_writes_spectrograms_and_clips(tmp_path):
    cfg = RunConfig.from_dict({"modality": "audio", "augment": {"reverb_prob": 1.0, "noise_prob": 1.0}})
    t = torch.arange(16000) / 16000
    x = (torch.stack([torch.sin(2 * np.pi * (200 + 100 * i) * t) for i in range(6)]) * 20000).to(torch.int16)
    paths = write_augmented_examples(x, torch.tensor([0, 0, 0, 1, 1, 1]), ["lo", "hi"], cfg, "audio", tmp_path)
    assert [p.name for p in paths] == ["augmented.png", "augmented_1.wav", "augmented_2.wav"]
    wave, sr = sf.read(paths[1])
    assert sr == 16000 and len(wave) == 16000
    stored = x.numpy() / 32767
    assert np.abs(stored - wave[None]).max(1).min() > 1e-2  # augmented: none of the stored clips


def test_audio_grid_shows_the_vtlp_warp(tmp_path):
    """With augment.vtlp the augmented spectrograms are drawn with the filterbank warp (seeded: the same twice)."""
    t = torch.arange(16000) / 16000
    x = (torch.stack([torch.sin(2 * np.pi * (300 + 400 * i) * t) for i in range(4)]) * 20000).to(torch.int16)
    off = dict(time_shift=0.0, noise_snr_db=None, speed=None, gain_db=0.0, freq_masks=0, time_masks=0)

    def grid(name, vtlp):
        cfg = RunConfig.from_dict({"modality": "audio", "augment": {**off, "vtlp": vtlp}})
        write_augmented_examples(x, torch.tensor([0, 0, 1, 1]), ["a", "b"], cfg, "audio", tmp_path / name)
        with Image.open(tmp_path / name / "augmented.png") as im:
            return np.asarray(im.convert("RGB")).astype(int)

    plain, warped, again = grid("plain", None), grid("warped", [0.8, 1.2]), grid("again", [0.8, 1.2])
    assert plain.shape == warped.shape
    assert np.abs(plain - warped).max() > 50
    assert np.array_equal(warped, again)

"""check_data: the report finds imbalance, silence, clipping, duplicates and unreadable files, and is JSON-able."""
import json
import shutil

import numpy as np
import soundfile as sf
from PIL import Image

from seehear.data.check import check_data, format_report


def test_audio_report(tmp_path):
    sr = 8000
    rng = np.random.default_rng(0)
    (tmp_path / "yes").mkdir()
    (tmp_path / "no").mkdir()
    for j in range(6):
        sf.write(tmp_path / "yes" / f"y{j}.wav", rng.uniform(-0.5, 0.5, sr).astype(np.float32), sr)
    sf.write(tmp_path / "no" / "silent.wav", np.zeros(sr // 2, np.float32), sr)
    sf.write(tmp_path / "no" / "clipped.flac", np.sign(rng.uniform(-1, 1, (sr, 2))).astype(np.float32), 16000)
    shutil.copy(tmp_path / "yes" / "y0.wav", tmp_path / "no" / "copy_of_y0.wav")
    (tmp_path / "no" / "bad.wav").write_text("definitely not a wav file")

    rep = check_data(tmp_path)
    assert json.loads(json.dumps(rep)) == rep
    assert (rep["kind"], rep["modality"], rep["num_examples"]) == ("folder", "audio", 10)
    assert rep["classes"] == {"no": 4, "yes": 6} and rep["imbalance"] == 1.5
    assert [u["key"] for u in rep["unreadable"]] == [str(tmp_path / "no" / "bad.wav")]
    assert rep["duplicates"] == [sorted([str(tmp_path / "no" / "copy_of_y0.wav"), str(tmp_path / "yes" / "y0.wav")])]
    a = rep["audio"]
    assert a["silent"] == [str(tmp_path / "no" / "silent.wav")]
    assert a["clipped"] == [str(tmp_path / "no" / "clipped.flac")]
    assert a["sample_rates"] == {"8000": 8, "16000": 1} and a["channels"] == {"1": 8, "2": 1}
    assert a["duration"] == {"min": 0.5, "median": 1.0, "max": 1.0}
    w = " | ".join(rep["warnings"])
    for part in ("class 'no' has only 4", "cannot be read", "identical content", "1 recordings are silent",
                 "1 recordings are clipped", "sample rates differ", "different labels"):
        assert part in w, part
    text = format_report(rep)
    assert "unreadable (1)" in text and "silent (1)" in text and "yes" in text and "! " in text


def test_image_report_imbalance_and_sizes(tmp_path):
    for j in range(12):
        (tmp_path / "cat").mkdir(exist_ok=True)
        Image.new("RGB", (20 + j, 10), (j * 20, 5, 5)).save(tmp_path / "cat" / f"{j}.png")
    (tmp_path / "dog").mkdir()
    Image.new("L", (8, 8), 3).save(tmp_path / "dog" / "a.png")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "dog" / "b.jpg")
    data = (tmp_path / "dog" / "b.jpg").read_bytes()
    (tmp_path / "dog" / "cut.jpg").write_bytes(data[: len(data) // 2])
    rep = check_data(tmp_path)
    assert json.loads(json.dumps(rep)) == rep
    assert rep["classes"] == {"cat": 12, "dog": 3} and rep["imbalance"] == 4.0
    assert [u["key"].rsplit("/", 1)[1] for u in rep["unreadable"]] == ["cut.jpg"]
    im = rep["images"]
    assert im["width"] == {"min": 8, "median": 25.5, "max": 64} and im["modes"] == {"RGB": 13, "L": 1}
    assert any("imbalance 4:1" in w and "class_weights" in w for w in rep["warnings"])
    assert any("smallest image is 8x8" in w for w in rep["warnings"])
    assert rep["duplicates"] == []
    assert "image size" in format_report(rep)


def test_groups_from_pattern(tmp_path):
    for name in ("yes_a_1.wav", "yes_b_1.wav", "no_a_1.wav", "no_c_1.wav"):
        sf.write(tmp_path / name, np.full(800, 0.01 * len(name), np.float32), 8000)
    rep = check_data(tmp_path, label_pattern=r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_")
    assert rep["kind"] == "pattern" and rep["groups"] == 3 and rep["classes"] == {"no": 2, "yes": 2}
    assert not any("speakers/groups" in w for w in rep["warnings"])
    assert "groups    3" in format_report(rep)

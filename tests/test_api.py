"""End to end through the Python API: train → run folder → evaluate → predict, on tiny generated data."""
import json

import pytest
import torch

import seehear
from seehear.errors import DataError, InputMismatchError, RunError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_run(shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shapes"
    r = seehear.train(shapes_dir, out, overrides=["train.epochs=20", "train.threads=1", "train.batch_size=16",
                                                  "model.name=small_cnn", "train.optimizer=adamw", "train.lr=0.003"],
                      progress=False)
    return r


def test_run_folder_is_complete(image_run):
    d = image_run.run_dir
    for name in ["config.yaml", "meta.json", "model.safetensors", "split.json", "skipped.json", "metrics.json",
                 "confusion.png", "curves.png", "report.html", "checkpoints/last.ckpt", "logs/metrics.csv"]:
        assert (d / name).is_file(), name
    meta = json.loads((d / "meta.json").read_text())
    assert meta["status"] == "done" and meta["modality"] == "image"
    assert meta["labels"] == sorted(meta["labels"]) and len(meta["labels"]) == 3
    assert meta["train"]["epochs_run"] == 20
    n_train = meta["data"]["counts"]["train"]
    assert meta["train"]["batch_size"] == min(16, max(8, -(-n_train // 8)))  # small data: several steps per epoch
    assert set(meta["versions"]) >= {"torch", "seehear"}
    m = json.loads((d / "metrics.json").read_text())["test"]
    assert 0 <= m["accuracy"] <= 1 and len(m["confusion"]) == 3
    assert image_run.accuracy > 0.6, "three easy shape classes should be learned in 20 epochs (chance is 1/3)"


def test_load_run_rebuilds_identical_model(image_run):
    a = seehear.load_run(image_run.run_dir)
    b = seehear.load_run(image_run.run_dir)
    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(a.model(x), b.model(x))
    assert a.labels == image_run.meta["labels"]


def test_evaluate_and_predict(image_run, shapes_dir, tmp_path):
    m = seehear.evaluate(image_run.run_dir, shapes_dir, out=tmp_path / "ev", progress=False)
    assert m["n"] == 180 and (tmp_path / "ev" / "metrics.json").is_file()
    label_dir = sorted(p for p in shapes_dir.iterdir() if p.is_dir())[0]
    files = sorted(label_dir.iterdir())[:3]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    rows = seehear.predict(image_run.run_dir, [*files, bad], top_k=2)
    good = [r for r in rows if "label" in r]
    assert len(good) == 3 and all(len(r["top"]) == 2 for r in good)
    for r in good:  # top-k is sorted, sums to at most 1, and the label is the first of it
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.001
        assert r["label"] == r["top"][0]["label"]
    assert [r for r in rows if "error" in r][0]["file"].endswith("bad.png")


def test_wrong_modality_is_refused(image_run, tones_dir):
    wav = next(tones_dir.rglob("*.wav"))
    with pytest.raises(InputMismatchError, match="recognises image"):
        seehear.predict(image_run.run_dir, [wav])


def test_run_from_other_version_is_refused(image_run, tmp_path):
    import shutil

    d = tmp_path / "old"
    shutil.copytree(image_run.run_dir, d)
    meta = json.loads((d / "meta.json").read_text())
    meta["format"] = 0
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="retrain"):
        seehear.load_run(d)


def test_existing_run_is_not_overwritten(image_run, shapes_dir):
    with pytest.raises(RunError, match="already holds a run"):
        seehear.train(shapes_dir, image_run.run_dir, progress=False)


def test_audio_training_skips_corrupt_files(tones_dir, tmp_path):
    import shutil

    data = tmp_path / "tones"
    shutil.copytree(tones_dir, data)
    cls = sorted(p for p in data.iterdir() if p.is_dir())[0]
    (cls / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    (cls / "empty.wav").write_bytes(b"")
    r = seehear.train(data, tmp_path / "run", model="tcresnet8",
                      overrides=["train.epochs=6", "train.threads=1", "train.batch_size=8", "audio.clip_seconds=0.5",
                                 "audio.normalize=none"],
                      progress=False)
    skipped = json.loads((r.run_dir / "skipped.json").read_text())
    assert sorted(s[0].rsplit("/", 1)[1] for s in skipped) == ["broken.wav", "empty.wav"]
    assert r.meta["data"]["skipped"] == 2 and r.meta["status"] == "done"
    assert r.accuracy > 0.5


def test_single_class_is_refused(shapes_dir, tmp_path):
    import shutil

    only = sorted(p for p in shapes_dir.iterdir() if p.is_dir())[0]
    shutil.copytree(only, tmp_path / "one" / only.name)
    with pytest.raises(DataError, match="class"):
        seehear.train(tmp_path / "one", tmp_path / "run", progress=False)

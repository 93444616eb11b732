"""Image sequences end to end: a square moving in one of 4 directions (no single frame tells which). The CNN+LSTM
learns the direction; the time-averaged baseline, which cannot see order, stays near chance. Predict and evaluate
take animated GIFs and frame folders; the run exports to ONNX."""
import json

import pytest

import seehear
from seehear.cli import main
from seehear.data.synth import DIRECTIONS, make_moving_squares

pytestmark = pytest.mark.slow
SET = ["train.threads=1", "data.workers=1", "image.size=16", "image.channels=1", "train.batch_size=16"]


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares")
    return (make_moving_squares(root / "train", per_class=50, seed=0),
            make_moving_squares(root / "gifs", per_class=8, gif=True, seed=1))


@pytest.fixture(scope="module")
def lstm_run(squares, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lstm"
    return seehear.train(squares[0], out, overrides=SET + ["modality=frames", "train.epochs=15"], progress=False)


def test_cnn_lstm_learns_the_direction(lstm_run):
    r = lstm_run
    assert (r.meta["modality"], r.meta["recipe"], r.meta["model"]["name"]) == ("frames", "frames", "cnn_lstm_frames")
    assert r.meta["input"]["frames"] == 8 and r.meta["data"]["frames"]["max"] == 8
    assert r.meta["config"]["augment"]["flip"] is False  # a mirrored clip would swap left and right
    assert r.metrics["accuracy"] >= 0.9, r.metrics["accuracy"]
    for f in ("report.html", "augmented.png", "metrics.json", "confusion.png"):
        assert (r.run_dir / f).is_file(), f


def test_predict_and_evaluate_gifs_and_folders(lstm_run, squares, capsys):
    train, gifs = squares
    files = [str(gifs / "left" / "clip_000.gif"), str(train / "up" / "clip_003")]
    rows = seehear.predict(lstm_run.run_dir, files)
    assert [row["file"] for row in rows] == files
    assert all(row["label"] in DIRECTIONS and 0 < row["probability"] <= 1 for row in rows)
    m = seehear.evaluate(lstm_run.run_dir, gifs, progress=False)  # 32 unseen clips, as GIFs
    assert m["accuracy"] >= 0.8 and not m["skipped"]
    assert main(["predict", str(lstm_run.run_dir), str(gifs / "down"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 8 and sum(row["label"] == "down" for row in out) >= 6


def test_frames_runs_export_to_onnx(lstm_run, squares, tmp_path):
    from seehear.deploy.onnx import export_onnx

    path = export_onnx(lstm_run.run_dir)  # checked against PyTorch inside (1e-3)
    assert json.loads(path.with_suffix(".json").read_text())["input"]["modality"] == "frames"
    # the transformer too (its fused eval kernel has no ONNX mapping: the export takes the plain path)
    r = seehear.train(squares[1], tmp_path / "tf", model="frames_transformer", overrides=SET + ["train.epochs=1"],
                      progress=False)
    export_onnx(r.run_dir)


def test_time_average_cannot_see_order(squares, tmp_path):
    r = seehear.train(squares[0], tmp_path / "mean", model="frames_mean", overrides=SET + ["train.epochs=10"],
                      progress=False)
    assert r.meta["modality"] == "frames"  # detected: every example is a frame folder
    assert r.metrics["accuracy"] <= 0.5, r.metrics["accuracy"]


def test_frames_refuse_image_policies_in_one_line(squares, tmp_path, capsys):
    assert main(["train", str(squares[1]), "--out", str(tmp_path / "bad"), "--modality", "frames", "--quiet",
                 "--set", "augment.policy=randaugment", "--set", "train.epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "augment.policy" in err and len(err.splitlines()) == 1


def test_frames_runs_are_served(lstm_run, squares):
    """`seehear serve` takes an animated GIF per request for a frames run (ONNX engine, a real uvicorn process),
    answers as predict does, and refuses a truncated GIF and a WAV with 4xx JSON."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
    from servers import serving

    gifs = squares[1]
    files = sorted((gifs / "left").glob("*.gif"))[:3] + sorted((gifs / "up").glob("*.gif"))[:3]
    want = [row["label"] for row in seehear.predict(lstm_run.run_dir, [str(f) for f in files])]
    name = lstm_run.run_dir.name
    with serving([lstm_run.run_dir]) as s:
        listed = {m["name"]: m for m in s.get("/v1/models")[1]["models"]}
        assert listed[name]["modality"] == "frames" and listed[name]["input"]["frames"] == 8
        got = [s.post(f"/v1/models/{name}/predict", f.read_bytes())[1]["label"] for f in files]
        assert got == want
        status, r = s.post(f"/v1/models/{name}/predict", files[0].read_bytes()[:200])
        assert status == 422 and "error" in r
        status, r = s.post(f"/v1/models/{name}/predict", b"RIFF\x24\x00\x00\x00WAVEfmt ")
        assert 400 <= status < 500 and "error" in r

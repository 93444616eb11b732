"""ONNX export of whole recognizers (front end included) matches PyTorch in ONNX Runtime."""
import json

import numpy as np
import pytest
import torch

import seehear
from seehear.cli import main
from seehear.deploy.onnx import example_input, export_onnx, onnx_session

pytestmark = pytest.mark.slow
FAST = ["train.epochs=1", "train.threads=1", "train.batch_size=16"]


@pytest.mark.parametrize("kind, model", [("image", "resnet8"), ("audio", "tcresnet8"), ("audio", "cnn_lstm")])
def test_export_matches_pytorch(kind, model, shapes_dir, tones_dir, tmp_path):
    data = shapes_dir if kind == "image" else tones_dir
    extra = ["audio.clip_seconds=0.5"] if kind == "audio" else []
    r = seehear.train(data, tmp_path / "run", model=model, overrides=FAST + extra, progress=False)
    path = export_onnx(r.run_dir)
    spec = json.loads(path.with_suffix(".json").read_text())
    assert spec["labels"] == r.meta["labels"]
    run = seehear.load_run(r.run_dir)
    x = example_input(run.meta["input"], batch=5, seed=3)  # another batch size than at export: dynamic axis
    with torch.no_grad():
        ref = run.model(x).numpy()
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    assert got.shape == ref.shape == (5, len(r.meta["labels"]))
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=1e-3)


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err

"""ONNX export of audio-image runs: one graph (image, audio, present) that gives PyTorch's logits with both inputs,
the image alone and the recording alone (PyTorch given None for the missing one), for each fusion mode; int8 and
compress refuse such runs in one line."""
import json

import numpy as np
import pytest
import torch

import seehear
from seehear.cli import main
from seehear.data.synth import make_pairs
from seehear.deploy.onnx import example_input, export_onnx, onnx_session

pytestmark = pytest.mark.slow
SMALL = ["modality=audio-image", "train.epochs=2", "train.threads=1", "data.workers=1", "train.batch_size=16",
         "image.size=16", "audio.clip_seconds=0.5"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("onnx-pairs") / "pairs", classes=3, per_class=12, size=16,
                      seconds=0.5, seed=2)


@pytest.mark.parametrize("mode", ["attention", "early", "late"])
def test_pair_graph_matches_pytorch_each_input_alone(mode, pairs, tmp_path):
    r = seehear.train(str(pairs), str(tmp_path / "run"), overrides=SMALL + [f"fusion.mode={mode}"], progress=False)
    path = export_onnx(r.run_dir)  # export checks the three views itself; checked again here on other inputs
    spec = json.loads(path.with_suffix(".json").read_text())
    assert spec["inputs"] == ["image", "audio", "present"] and spec["input"]["modality"] == "audio-image"
    run = seehear.load_run(r.run_dir)
    sess = onnx_session(path)
    b = 5  # another batch size than at export: the batch axis is dynamic
    image, audio = example_input(run.meta["input"]["image"], b, 11), example_input(run.meta["input"]["audio"], b, 12)
    # noise in the absent input: the graph must ignore it, as PyTorch ignores a None
    junk_image, junk_audio = example_input(run.meta["input"]["image"], b, 13), 3 * example_input(
        run.meta["input"]["audio"], b, 14)
    present = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 0], [0, 1]], dtype=torch.float32)  # mixed in one batch
    feed = {"image": torch.where(present[:, :1, None, None] > 0, image, junk_image).numpy(),
            "audio": torch.where(present[:, 1:] > 0, audio, junk_audio).numpy(), "present": present.numpy()}
    got = sess.run(None, feed)[0]
    with torch.no_grad():
        ref = np.concatenate([run.model(image[i:i + 1] if p[0] else None, audio[i:i + 1] if p[1] else None).numpy()
                              for i, p in enumerate(present.tolist())])
    assert got.shape == (b, len(run.labels))
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=1e-3)
    with torch.no_grad():  # and the views really differ: presence is not ignored by the graph
        both = run.model(image[1:2], audio[1:2]).numpy()
    assert np.abs(both - got[1:2]).max() > 1e-4


def test_int8_and_compress_refuse_in_one_line(pairs, tmp_path, capsys):
    r = seehear.train(str(pairs), str(tmp_path / "run"), overrides=SMALL, progress=False)
    capsys.readouterr()
    assert main(["export", str(r.run_dir), "--int8", str(pairs)]) == 2
    err = capsys.readouterr().err
    assert "audio-image" in err and "int8" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["compress", str(r.run_dir), "--out", str(tmp_path / "small"), "--prune", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "audio-image" in err and "Traceback" not in err and not (tmp_path / "small").exists()
    assert main(["export", str(r.run_dir)]) == 0 and (r.run_dir / "model.onnx").is_file()

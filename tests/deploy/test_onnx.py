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


def test_audio_export_holds_utterance_cmvn_and_no_vtlp(tones_dir, tmp_path):
    """audio.normalize=utterance is inside the exported graph (a louder copy of a clip gets the same logits, as the
    per-band mean over time takes the log offset away), and a run trained with augment.vtlp exports the plain
    front end: ONNX equals PyTorch in eval mode, where the warp is off."""
    over = FAST + ["audio.clip_seconds=0.5", "audio.normalize=utterance", "augment.vtlp=[0.9, 1.1]"]
    r = seehear.train(tones_dir, tmp_path / "run", model="tcresnet8", overrides=over, progress=False)
    run = seehear.load_run(r.run_dir)
    assert run.cfg.audio.normalize == "utterance" and run.model.vtlp is not None
    path = export_onnx(r.run_dir)
    x = example_input(run.meta["input"], batch=4, seed=7)
    with torch.no_grad():
        ref = run.model.eval()(x).numpy()
    sess = onnx_session(path)
    got = sess.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=1e-3)
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    louder = sess.run(None, {"input": (4 * x).numpy()})[0]
    np.testing.assert_allclose(louder, got, atol=1e-2)
    quieter = seehear.load_run(r.run_dir)
    quieter.model.frontend.normalize = "none"  # the same weights without CMVN do hear the gain
    with torch.no_grad():
        assert np.abs(quieter.model.eval()(4 * x).numpy() - quieter.model(x).numpy()).max() > 1e-2


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_fastnet_with_flip_tta_exports_and_quantizes_to_int8(shapes_dir, tmp_path):
    """The image-small default (fastnet, flip TTA inside the model) exports with a dynamic batch axis, and its int8
    copy agrees with the fp32 graph on almost every prediction."""
    from seehear.deploy.quantize import quantize_int8

    r = seehear.train(shapes_dir, tmp_path / "run", overrides=["train.epochs=3", "train.threads=1",
                                                               "train.batch_size=16"], progress=False)
    run = seehear.load_run(r.run_dir)
    assert run.meta["model"]["name"] == "fastnet" and run.model.tta == "flip"
    fp32 = export_onnx(r.run_dir)  # checks ORT against PyTorch itself (1e-3)
    x = example_input(run.meta["input"], batch=7, seed=5).numpy()
    ref = onnx_session(fp32).run(None, {"input": x})[0]
    assert ref.shape == (7, 3)
    calib = example_input(run.meta["input"], batch=64, seed=6).numpy()
    int8 = quantize_int8(fp32, tmp_path / "m.int8.onnx", calib)
    assert int8.stat().st_size < fp32.stat().st_size
    got = onnx_session(int8).run(None, {"input": x})[0]
    assert got.shape == ref.shape
    assert (got.argmax(1) == ref.argmax(1)).sum() >= 6, "int8 predictions agree with fp32"
    # where u8s8 kernels saturate (x86 without VNNI) weights get 7 bits, twice the step: on an AVX2 host this
    # 3-epoch model's logits moved by up to 42% of their largest value (1.0 / 20.6 with 8 bits), predictions unchanged
    from seehear.deploy.cpu import int8_isa

    tol = 0.5 if int8_isa()["saturates"] else 0.25
    assert np.abs(got - ref).max() < tol * np.abs(ref).max(), "int8 logits stay close to fp32"
    ops = {n.op_type for n in __import__("onnx").load(str(int8)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_flip_translate_tta_is_six_weighted_views_and_exports(shapes_dir, tmp_path):
    import torch
    import torch.nn.functional as F

    r = seehear.train(shapes_dir, tmp_path / "run", overrides=["train.epochs=1", "train.threads=1",
                                                               "image.tta=flip-translate"], progress=False)
    model = seehear.load_run(r.run_dir).model.eval()
    assert model.tta == "flip-translate"
    x = example_input(r.meta["input"], batch=5, seed=2)
    with torch.no_grad():
        f = model.features(x)
        p = F.pad(f, (1, 1, 1, 1), mode="reflect")
        one = lambda v: model.backbone(v)
        pair = lambda v: 0.5 * (one(v) + one(v.flip(-1)))
        want = 0.5 * pair(f) + 0.25 * (pair(p[..., :-2, :-2]) + pair(p[..., 2:, 2:]))
        got = model.logits(x)  # before the run's calibration temperature
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(x), want / model.temperature, atol=1e-4, rtol=1e-4)
    # predict_probs feeds 6x fewer images per batch (memory bounded by views), with the same answer
    from seehear.engine.trainer import predict_probs

    assert model.views == 6
    sizes = []
    hook = model.backbone.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    probs = predict_probs(model, x, batch_size=12, precision="32")
    hook.remove()
    assert sizes == [12, 12, 6]  # 2 + 2 + 1 images, 6 views each
    torch.testing.assert_close(probs, torch.softmax(got / model.temperature, 1), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        model.tta = "flip"
        assert not torch.allclose(model.logits(x), got, atol=1e-4), "the shifted views change the answer"
    fp32 = export_onnx(r.run_dir)  # checks ORT against PyTorch itself, with the 6 views inside the graph
    assert onnx_session(fp32).run(None, {"input": x.numpy()})[0].shape == (5, 3)


def test_export_int8_cli_calibrates_on_data(shapes_dir, tmp_path, capsys):
    r = seehear.train(shapes_dir, tmp_path / "run", model="small_cnn", overrides=FAST, progress=False)
    assert main(["export", str(r.run_dir), "--int8", str(shapes_dir)]) == 0
    out = capsys.readouterr().out
    assert "calibrated on 60 inputs" in out and "of 120 held-out inputs" in out  # 180 split 1:2, disjoint
    agreement = float(out.split("agrees with fp32 on ")[1].split("%")[0])
    assert agreement >= 99.0
    q = r.run_dir / "model.int8.onnx"
    x = example_input(r.meta["input"], batch=4).numpy()
    assert onnx_session(q).run(None, {"input": x})[0].shape == (4, 3)
    assert main(["export", str(r.run_dir), "--int8", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err

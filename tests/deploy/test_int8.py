"""int8 export: checked on held-out inputs, falls back layer by layer, refuses (and writes nothing) when it must."""
import numpy as np
import pytest
import torch

import seehear
from seehear.cli import main
from seehear.data.synth import make_shape_images, make_tones
from seehear.deploy.cpu import int8_isa
from seehear.deploy.int8_check import Int8Refused, export_int8, split_inputs, top1
from seehear.deploy.onnx import export_onnx

FAST = ["train.epochs=3", "train.threads=1", "train.batch_size=16"]


@pytest.fixture(scope="module")
def fastnet_run(shapes_dir, tmp_path_factory):
    """The image default (fastnet, frozen whitening stem), trained once for this file's tests."""
    return seehear.train(shapes_dir, tmp_path_factory.mktemp("int8") / "run", overrides=FAST, progress=False).run_dir


def fresh_inputs(run, folder) -> np.ndarray:
    """Decoded inputs from a freshly generated folder, never seen by training or calibration."""
    from seehear.data.cache import decode_all
    from seehear.data.sources import load_source

    d = decode_all(load_source(folder, modality=run.modality).records, run.cfg, run.modality, progress=False)
    return (d.x.float() / 32767.0).numpy() if d.x.dtype == torch.int16 else d.x.numpy()


def test_split_is_disjoint_spread_and_bounded():
    cal, chk = split_inputs(180)
    assert set(cal).isdisjoint(chk) and len(cal) + len(chk) == 180 and len(cal) == 60
    assert cal.min() < 10 and cal.max() > 170, "calibration covers the whole (class-sorted) folder"
    cal, chk = split_inputs(50000)
    assert (len(cal), len(chk)) == (256, 512) and set(cal).isdisjoint(chk)


def test_isa_detection_from_flags():
    assert int8_isa({"sse2", "avx2", "fma"})["saturates"], "AVX2 without VNNI saturates u8s8"
    assert not int8_isa({"sse2", "avx2", "avx512f", "avx512_vnni"})["saturates"]
    assert int8_isa({"sse2", "avx2", "avx512f", "avx512_vnni", "avx512_bf16"})["isa"] == "AVX-512 VNNI + BF16"


@pytest.mark.slow
def test_fastnet_int8_agrees_on_held_out_and_refuses_when_it_must(fastnet_run, shapes_dir, tmp_path, capsys):
    out = tmp_path / "m.int8.onnx"
    path, info = export_int8(fastnet_run, shapes_dir, out)
    assert path == out and out.is_file()
    assert info["top1_agreement_with_fp32"] >= 0.99 and info["check_examples"] == 120
    assert info["calibration_examples"] == 60 and "accuracy_int8" in info
    assert "/backbone/stem/stem.0/Conv" in info["fp32_nodes"], "the whitening stem stays fp32"
    assert len(info["quantized_nodes"]) >= 4
    # on images generated afresh (another seed), not only on the check split
    run = seehear.load_run(fastnet_run)
    x = fresh_inputs(run, make_shape_images(tmp_path / "fresh", classes=3, per_class=40, seed=7))
    fp32 = fastnet_run / "model.onnx"
    assert (top1(out, x) == top1(fp32, x)).mean() >= 0.97
    assert (top1(out, x, optimized=False) == top1(fp32, x)).mean() >= 0.97

    # the refusal path: a bar no plan reaches; nothing is written, one line says what was measured
    refused = tmp_path / "refused.int8.onnx"
    with pytest.raises(Int8Refused) as e:
        export_int8(fastnet_run, shapes_dir, refused, min_agreement=1.01)
    msg = str(e.value)
    assert "\n" not in msg and "held-out inputs" in msg and "needs 101.0%" in msg
    assert not refused.exists() and not list(tmp_path.glob("refused*"))
    assert main(["export", str(fastnet_run), "--int8", str(shapes_dir), "--out", str(refused),
                 "--min-agreement", "1.01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "int8 model not written" in err and not refused.exists()


@pytest.mark.slow
def test_fallback_keeps_more_layers_fp32_and_records_them(fastnet_run, shapes_dir, tmp_path):
    """A conv whose output channels differ 300x in scale before its BatchNorm (same fp32 function): one per-tensor
    uint8 range for that output wipes out the small channels, so the first plan fails; keeping that conv fp32
    (the next plan) passes, and the info says which layers stayed fp32."""
    import shutil

    from seehear.engine.run_folder import save_model

    run_dir = shutil.copytree(fastnet_run, tmp_path / "run")
    run = seehear.load_run(run_dir)
    g0 = run.model.backbone.groups[0].net
    conv, bn = g0[0], g0[2]
    s = 300.0
    with torch.no_grad():
        x = fresh_inputs(run, shapes_dir)[:16]
        before = run.model(torch.from_numpy(x))
        conv.weight[0] *= s
        bn.running_mean[0] *= s
        bn.running_var[0] *= s * s
        torch.testing.assert_close(run.model(torch.from_numpy(x)), before, atol=1e-3, rtol=1e-3)
    save_model(run_dir, run.model)
    path, info = export_int8(run_dir, shapes_dir, tmp_path / "fb.int8.onnx", min_agreement=0.99)
    first, chosen = info["attempts"][0], info["attempts"][-1]
    assert first["agreement"] < 0.99 and info["fell_back"]
    assert first["fp32_nodes"] == ["/backbone/stem/stem.0/Conv", "/backbone/classifier/MatMul"]
    assert chosen["agreement"] >= 0.99 and info["top1_agreement_with_fp32"] == chosen["agreement"]
    assert info["fp32_nodes"] == chosen["fp32_nodes"] and info["calibration_method"] == chosen["method"]
    assert set(info["fp32_nodes"]).isdisjoint(info["quantized_nodes"]) and path.is_file()


def test_fallback_ladder_keeps_leading_layers_fp32_progressively():
    from seehear.deploy.int8_check import plans

    nodes = [("stem", "Conv")] + [(f"c{i}", "Conv") for i in range(6)] + [("head", "MatMul")]
    ladder = plans(nodes)
    kept = [p["fp32_nodes"] for p in ladder if p["method"] == "minmax" and not p["dynamic_matmul"]]
    assert kept == [["stem", "head"], ["stem", "c0", "head"], ["stem", "c0", "c1", "head"],
                    ["stem", "c0", "c1", "c2", "head"]]
    assert {p["method"] for p in ladder} == {"minmax", "percentile"}
    assert not any(p["dynamic_matmul"] for p in ladder), "the only MatMul (the head) is fp32 already"
    audio = plans([("conv", "Conv"), ("c1", "Conv"), ("proj", "MatMul"), ("lstm", "LSTM"), ("head", "Gemm")])
    assert any(p["dynamic_matmul"] for p in audio)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn_lstm", "tcresnet8"])
def test_audio_int8_agrees_on_held_out(model, tones_dir, tmp_path):
    import onnx

    r = seehear.train(tones_dir, tmp_path / "run", model=model, overrides=FAST + ["audio.clip_seconds=0.5"],
                      progress=False)
    path, info = export_int8(r.run_dir, tones_dir, tmp_path / "a.int8.onnx")
    assert info["top1_agreement_with_fp32"] >= 0.99
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    if model == "cnn_lstm":
        assert "DynamicQuantizeLSTM" in ops, "the LSTM is quantized dynamically"
    assert "QuantizeLinear" in ops, "the convolutions statically"
    run = seehear.load_run(r.run_dir)
    x = fresh_inputs(run, make_tones(tmp_path / "fresh", classes=3, per_class=12, seconds=0.5, seed=5))
    assert (top1(path, x) == top1(export_onnx(r.run_dir), x)).mean() >= 0.97

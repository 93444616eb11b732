"""Quantization-aware training for the int8 copy: the fake quantization simulates what ONNX Runtime's int8 graph
computes, and `seehear compress --int8 DATA --qat` keeps a QAT copy only when it is no worse than PTQ's, in a run
that predict and evaluate take like any other."""
import json

import numpy as np
import pytest
import torch
from torch.ao.quantization import FakeQuantize

import seehear
from seehear.cli import main
from seehear.deploy.int8_check import load_inputs, session
from seehear.deploy.onnx import example_input, export_onnx
from seehear.deploy.qat import FakeQuant, backbone_layers, ptq_drop, targets, wants_qat
from seehear.deploy.quantize import preprocess, quantizable_nodes, quantize_int8

FAST = ["train.epochs=3", "train.threads=1", "train.batch_size=16"]


def test_auto_mode_trains_only_when_ptq_loses_more_than_half_a_point():
    assert ptq_drop({"accuracy_fp32": 0.95, "accuracy_int8": 0.94, "top1_agreement_with_fp32": 0.99}) == 0.01
    assert ptq_drop({"top1_agreement_with_fp32": 0.997}) == 0.003, "unlabelled: the share of changed answers"
    assert wants_qat(None, 0.006) and not wants_qat(None, 0.005) and wants_qat(None, None), "refused PTQ: try QAT"
    assert wants_qat(True, 0.0) and not wants_qat(False, 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("model,data", [("fastnet", "shapes_dir"), ("tcresnet8", "tones_dir")])
def test_fake_quantization_computes_what_the_int8_graph_computes(model, data, request, tmp_path):
    folder = request.getfixturevalue(data)
    extra = ["audio.clip_seconds=0.5"] if model == "tcresnet8" else []
    r = seehear.train(folder, tmp_path / "run", model=model, overrides=FAST + extra, progress=False)
    run = seehear.load_run(r.run_dir)
    m = run.model.eval()
    x_cal, x_chk, _, _ = load_inputs(run, folder)
    fp32 = export_onnx(r.run_dir)
    q = quantize_int8(fp32, tmp_path / "q.onnx", x_cal, reduce_range=False)  # stem and classifier fp32
    layers = backbone_layers(m, example_input(run.meta["input"]))
    assert len(layers) == len(quantizable_nodes(preprocess(fp32, tmp_path / "pre.onnx"))), "same layers as ORT's"
    if model == "tcresnet8":
        assert all(layer["norm"] is not None for layer in layers[1:-1]), "every conv's BatchNorm is folded in ONNX"

    before = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        ref = m(torch.from_numpy(x_chk)).numpy()
        fq = FakeQuant(targets(layers), reduce_range=False)
        quantizers = [q for q in m.modules() if isinstance(q, FakeQuantize)] + list(fq.observers)
        assert len(quantizers) == 3 * len(targets(layers)), "weights, inputs and outputs of each int8 layer"
        for o in quantizers:  # calibrate as ORT does: min/max of the fp32 graph's tensors over the calibration set
            o.disable_fake_quant()
        m(torch.from_numpy(x_cal))  # in one batch, so that the moving average is the min/max of them all
        for o in quantizers:
            o.disable_observer()
            o.enable_fake_quant()
        sim = m(torch.from_numpy(x_chk)).numpy()
        fq.remove()
        after = m(torch.from_numpy(x_chk)).numpy()
    ort_int8 = session(q, optimized=False).run(None, {"input": x_chk})[0]  # QDQ: the quantization's own error
    err_fp32, err_sim = np.abs(ref - ort_int8).mean(), np.abs(sim - ort_int8).mean()
    assert err_fp32 > 0, "int8 differs from fp32 at all"
    assert err_sim < 0.3 * err_fp32, f"the simulation is not the int8 graph: {err_sim:.2e} vs fp32 {err_fp32:.2e}"
    assert m.state_dict().keys() == before.keys() and all(torch.equal(before[k], v) for k, v in
                                                          m.state_dict().items()), "remove() leaves a plain model"
    np.testing.assert_array_equal(after, ref)


@pytest.fixture(scope="module")
def fastnet_run(shapes_dir, tmp_path_factory):
    return seehear.train(shapes_dir, tmp_path_factory.mktemp("qat") / "run", overrides=FAST,
                         progress=False).run_dir


@pytest.mark.slow
def test_forced_qat_is_no_worse_than_ptq_and_a_run_like_any_other(fastnet_run, shapes_dir, tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["compress", str(fastnet_run), "--out", str(out), "--int8", str(shapes_dir), "--qat"]) == 0
    printed = capsys.readouterr().out
    assert "-> QAT" in printed and "kept QAT" in printed
    c = json.loads((out / "compress.json").read_text())
    rec = c["int8"]
    assert rec["path"] == "qat" and rec["qat_mode"] is True
    ptq, qat = rec["ptq"], rec["qat"]
    assert qat["accuracy_int8"] >= ptq["accuracy_int8"], "same held-out check inputs: no worse than PTQ"
    assert qat["top1_agreement_with_fp32"] >= 0.99 and qat["check_examples"] == ptq["check_examples"]
    assert qat["fake_quantized_layers"] and "backbone.stem.0" in qat["fp32_layers"]
    assert "backbone.classifier" in qat["fp32_layers"]
    rows = {row["model"]: row for row in c["table"]}
    assert rows["compressed int8"]["method"] == "qat"
    assert rows["compressed int8"]["accuracy"] >= rows["compressed int8 (PTQ, before QAT)"]["accuracy"] - 0.02
    assert rows["compressed"]["accuracy"] >= qat["test_accuracy_fp32_before"] - 0.02, "fp32 barely moved"
    run = seehear.load_run(out)
    assert run.meta["compress"]["int8"]["path"] == "qat" and (out / "model.int8.onnx").is_file()
    assert "quantization-aware training" in (out / "report.html").read_text()
    files = sorted(str(p) for p in (shapes_dir / "square").glob("*.png"))[:3]
    assert all(row["label"] in run.labels for row in seehear.predict(out, files))
    assert seehear.evaluate(out, shapes_dir, out=tmp_path / "eval")["accuracy"] >= 0.8


@pytest.mark.slow
def test_auto_qat_follows_the_measured_ptq_drop(fastnet_run, shapes_dir, tmp_path, capsys):
    auto = tmp_path / "auto"  # the default: QAT only when PTQ lost more than half a point on the check inputs
    assert main(["compress", str(fastnet_run), "--out", str(auto), "--int8", str(shapes_dir)]) == 0
    rec = json.loads((auto / "compress.json").read_text())["int8"]
    assert rec["qat_mode"] == "auto" and ("qat" in rec) == (rec["ptq"]["drop"] > 0.005)
    assert rec["path"] == ("qat" if "qat" in rec and rec["qat"].get("kept", True) else "ptq")
    off = tmp_path / "off"
    assert main(["compress", str(fastnet_run), "--out", str(off), "--int8", str(shapes_dir), "--no-qat"]) == 0
    rec = json.loads((off / "compress.json").read_text())["int8"]
    assert rec["path"] == "ptq" and "qat" not in rec and rec["qat_mode"] is False
    assert "QAT off" in capsys.readouterr().out
    assert main(["compress", str(fastnet_run), "--out", str(tmp_path / "x"), "--qat"]) == 2
    assert "--int8" in capsys.readouterr().err

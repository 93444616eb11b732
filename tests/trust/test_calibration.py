import json

import torch

from seehear.trust.calibration import calibrate, ece_nll, fit_temperature
from seehear.trust.common import batched_logits


def test_fit_temperature_recovers_a_known_scale():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 5, generator=g) * 2
    y = torch.distributions.Categorical(logits=logits).sample()  # labels drawn from softmax(logits): T = 1 fits
    t = fit_temperature(logits * 3.0, y)  # the same model, 3x over-confident
    assert abs(t - 3.0) < 0.3


def test_temperature_scaling_lowers_ece_of_an_overconfident_model(patch_model, patch_data):
    import copy

    model = copy.deepcopy(patch_model)
    with torch.no_grad():  # make it over-confident: every logit x4 (argmax, and so accuracy, is unchanged)
        model.backbone.classifier.weight.mul_(4.0)
        model.backbone.classifier.bias.mul_(4.0)
    (x, y), (xv, yv) = patch_data
    xv = torch.cat([xv, x[:128]])
    # noisy validation labels: the model is right only ~85% of the time while nearly always sure
    yv = torch.cat([yv, y[:128]]).clone()
    flip = torch.rand(len(yv), generator=torch.Generator().manual_seed(1)) < 0.15
    yv[flip] = 1 - yv[flip]
    acc_before = (batched_logits(model, xv).argmax(1) == yv).float().mean()
    info = calibrate(model, xv, yv)
    assert info["temperature"] > 1.5
    assert info["ece_after"] < info["ece_before"] - 0.03
    assert info["nll_after"] < info["nll_before"]
    # the temperature is now inside the model: its forward gives the calibrated probabilities
    ece, _ = ece_nll(batched_logits(model, xv), yv)
    assert abs(ece - info["ece_after"]) < 1e-6
    assert (batched_logits(model, xv).argmax(1) == yv).float().mean() == acc_before


def test_no_validation_split_is_a_note_not_a_crash(patch_model):
    info = calibrate(patch_model, None, None)
    assert "skipped" in info and info["temperature"] == 1.0


def test_temperature_survives_save_and_load_and_old_runs_still_load(tmp_path, patch_model):
    import copy

    from seehear.engine import run_folder as rf
    from seehear.models.recognizer import input_spec
    from seehear.config import RunConfig

    model = copy.deepcopy(patch_model)
    cfg = RunConfig.from_dict({"model": {"name": "small_cnn", "kwargs": {"width": 8}},
                               "image": {"size": 32, "channels": 3}})
    meta = {"status": "done", "labels": model.labels, "modality": "image", "config": cfg.to_dict(),
            "input": input_spec(cfg, "image"), "norm_stats": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    rf.write_meta(tmp_path, meta)
    rf.save_model(tmp_path, model)
    old = rf.load_run(tmp_path)  # a run written before calibration existed
    assert float(old.model.temperature) == 1.0
    rf.write_meta(tmp_path, {**meta, "calibration": {"temperature": 2.5}})
    new = rf.load_run(tmp_path)
    assert float(new.model.temperature) == 2.5
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(new.model(x) * 2.5, old.model(x), atol=1e-5)
    assert "temperature" not in json.dumps(list(new.model.state_dict()))


def test_onnx_export_carries_the_temperature(tmp_path, patch_model):
    from seehear.config import RunConfig
    from seehear.deploy.onnx import export_onnx, onnx_session
    from seehear.engine import run_folder as rf
    from seehear.models.recognizer import input_spec

    cfg = RunConfig.from_dict({"model": {"name": "small_cnn", "kwargs": {"width": 8}},
                               "image": {"size": 32, "channels": 3}})
    rf.write_meta(tmp_path, {"status": "done", "labels": patch_model.labels, "modality": "image",
                             "config": cfg.to_dict(), "input": input_spec(cfg, "image"),
                             "norm_stats": {"mean": [0.5] * 3, "std": [0.25] * 3},
                             "calibration": {"temperature": 3.0}})
    rf.save_model(tmp_path, patch_model)
    path = export_onnx(tmp_path)
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        raw = rf.load_run(tmp_path).model.logits(x)
    assert torch.allclose(torch.from_numpy(got), raw / 3.0, atol=1e-4)

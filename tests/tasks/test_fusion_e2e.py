"""Audio-image runs end to end, on generated pairs where some images and some recordings carry no class signal:
the fused model beats either input alone, each alone is above chance (modality dropout), a pair with a missing
recording is skipped and listed, predict takes either input or both, and the run folder loads back exactly."""
import json

import pytest
import torch

import seehear
from seehear.cli import main
from seehear.data.pairs import decode_pairs, load_pairs
from seehear.data.synth import make_pairs
from seehear.engine.fusion import fit_fusion, fusion_logits
from seehear.engine.run_folder import load_run
from seehear.errors import SeehearError
from seehear.models.recognizer import build_recognizer

pytestmark = pytest.mark.slow
SMALL = ["train.threads=1", "data.workers=1", "train.batch_size=16", "image.size=16", "audio.clip_seconds=0.5"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    manifest = make_pairs(tmp_path_factory.mktemp("av") / "pairs", classes=3, per_class=60, seconds=0.5, seed=0)
    (manifest.parent / "audio" / "square_007.wav").unlink()  # this pair loses its recording
    return manifest


@pytest.fixture(scope="module")
def run(pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("av-run") / "run"
    args = ["train", str(pairs), "--modality", "audio-image", "--out", str(out), "--quiet", "--epochs", "12"]
    assert main(args + [x for s in SMALL for x in ("--set", s)]) == 0
    return out


def test_fused_beats_each_input_alone(run):
    m = json.loads((run / "metrics.json").read_text())["test"]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["modality"] == "audio-image" and meta["task"] == "classify" and meta["model"]["fusion"]["mode"]
    assert m["accuracy"] >= max(m["accuracy_image_only"], m["accuracy_audio_only"])
    assert m["accuracy"] >= 0.75
    assert min(m["accuracy_image_only"], m["accuracy_audio_only"]) > 0.45, "each alone above chance (1/3)"
    report = (run / "report.html").read_text()
    assert "audio-image" in report and "image alone" in report and "audio alone" in report


def test_pair_with_missing_recording_is_listed(run):
    skipped = json.loads((run / "skipped.json").read_text())
    assert len(skipped) == 1 and "square_007.png+" in skipped[0][0]
    assert skipped[0][1].startswith("audio: ") and "not found" in skipped[0][1]


def test_run_folder_round_trip(run, pairs):
    loaded = load_run(run)
    meta = json.loads((run / "meta.json").read_text())
    assert loaded.modality == "audio-image" and loaded.model.mode == meta["config"]["fusion"]["mode"]
    assert float(loaded.model.temperature) == pytest.approx(meta["calibration"]["temperature"])
    src = load_pairs(pairs)
    test_keys = set(json.loads((run / "split.json").read_text())["test"])
    recs = [r for r in src.records if r.key in test_keys]
    d = decode_pairs(recs, loaded.cfg, workers=1, progress=False)
    y = torch.tensor([loaded.labels.index(recs[i].label) for i in d.keep])
    acc = float((fusion_logits(loaded.model, d.image, d.audio).argmax(1) == y).float().mean())
    assert acc == pytest.approx(json.loads((run / "metrics.json").read_text())["test"]["accuracy"])


def test_predict_either_input_or_both_and_evaluate(run, pairs, capsys):
    img, wav = pairs.parent / "images" / "circle_000.png", pairs.parent / "audio" / "circle_000.wav"
    for args, inputs in ((["--image", str(img)], ["image"]), (["--audio", str(wav)], ["audio"]),
                         (["--image", str(img), "--audio", str(wav)], ["image", "audio"]), ([str(wav)], ["audio"])):
        capsys.readouterr()
        assert main(["predict", str(run), *args, "--format", "json"]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        assert row["inputs"] == inputs and row["label"] in ("circle", "square", "triangle")
        assert sum(t["probability"] for t in row["top"]) == pytest.approx(1.0, abs=1e-3)
    m = seehear.evaluate(run, pairs, out=run / "eval" / "again")
    assert {"accuracy", "accuracy_image_only", "accuracy_audio_only"} <= set(m) and len(m["skipped"]) == 1
    assert main(["export", str(run)]) == 0 and (run / "model.onnx").is_file()  # tests/deploy/test_onnx_pairs.py


@pytest.mark.parametrize("mode", ["early", "late"])
def test_other_modes_train_and_work_alone(mode, pairs, tmp_path):
    """The step itself (engine/fusion.py) on decoded pairs: each mode learns, with each input alone too."""
    cfg = seehear.config.RunConfig.from_dict({"modality": "audio-image"}).override(
        SMALL + [f"fusion.mode={mode}", "train.epochs=10", "augment.flip=false"])
    src = load_pairs(pairs)
    d = decode_pairs(src.records, cfg, workers=1, progress=False)
    y = torch.tensor([src.labels.index(src.records[i].label) for i in d.keep])
    clean = torch.tensor([src.records[i].extra["condition"] == "clean" for i in d.keep])
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    tr, te = order[:130], order[130:]
    torch.manual_seed(0)
    model = build_recognizer(cfg, src.labels, "audio-image")
    fit_fusion(model, cfg, (d.image[tr], d.audio[tr], y[tr]), None, tmp_path, progress=False)
    te = te[clean[te]]  # pairs where both inputs carry the class: each alone should find it
    for image, audio in ((d.image[te], d.audio[te]), (d.image[te], None), (None, d.audio[te])):
        acc = float((fusion_logits(model, image, audio).argmax(1) == y[te]).float().mean())
        assert acc > 0.5, (mode, image is None, audio is None, acc)


def test_refusals(run, pairs, tmp_path):
    with pytest.raises(SeehearError, match="not available"):
        seehear.train(pairs, tmp_path / "x", overrides=["modality=audio-image", "augment.mixup=0.2"])
    with pytest.raises(SeehearError, match="fusion.image_model"):
        seehear.train(pairs, tmp_path / "y", model="resnet8", overrides=["modality=audio-image"])
    with pytest.raises(SeehearError, match="audio-image"):
        seehear.predict(run, [str(pairs)])

"""Speech pretraining (tasks/pretrain.py on audio, BEST-RQ): a run folder whose held-out masked-prediction accuracy
beats chance, transcription and keyword classification runs that start from its encoder, and bad input."""
import json

import pytest
import torch
from safetensors.torch import load_file

import seehear
from seehear.cli import main
from seehear.config import RunConfig
from seehear.data.synth import make_tones
from seehear.errors import ConfigError, DataError
from seehear.tasks.pretrain import pretrain

# global normalisation: tones leave most mel bands to the noise floor, which per-band CMVN would blow up into
# unpredictable targets; speech fills the bands (the recipe's default stays per utterance)
FAST = ["train.threads=1", "data.workers=1", "audio.normalize=global", "pretrain.codebook_size=64"]
DOWN = ["train.threads=1", "data.workers=1", "train.epochs=2", "transcribe.decoder=greedy",
        "transcribe.tune_decoding=false"]


@pytest.fixture(scope="module")
def ssl_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    data = make_tones(root / "pool", classes=3, per_class=12, seconds=0.6, seed=1)
    r = pretrain(data, root / "ssl", epochs=8, progress=False, overrides=FAST)
    return root, data, r


def _kaldi(root, data):
    """A Kaldi dir over the pretraining tones, transcript = the pitch's name (so every test file overlaps)."""
    d = root / "kaldi"
    d.mkdir(exist_ok=True)
    names = {"220hz": "low", "294hz": "mid", "392hz": "high"}
    wavs = sorted(data.glob("*/*.wav"))
    (d / "wav.scp").write_text("".join(f"u{i:03d} {w}\n" for i, w in enumerate(wavs)))
    (d / "text").write_text("".join(f"u{i:03d} {names[w.parent.name]}\n" for i, w in enumerate(wavs)))
    return d


@pytest.mark.slow
def test_audio_pretraining_beats_chance(ssl_run):
    root, _, r = ssl_run
    out = root / "ssl"
    for f in ("config.yaml", "meta.json", "model.safetensors", "metrics.json", "split.json", "bestrq.safetensors"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"] == "pretrain" and meta["modality"] == "audio" and meta["status"] == "done"
    assert meta["pretrain"]["method"] == "masked" and meta["config"]["model"]["name"] == "conformer_ctc_tiny"
    assert meta["input"]["n_mels"] == 80 and meta["input"]["frame_factor"] == 4
    assert meta["data"]["counts"] == {"train": 32, "valid": 4} and len(meta["data"]["files_sha256"]) == 64
    m = json.loads((out / "metrics.json").read_text())["valid"]
    assert m["files"] == 4 and m["masked_frames"] > 10 and m["chance"] == 1 / 64
    assert m["masked_accuracy"] > 10 * m["chance"], m  # far above chance after a few epochs
    assert len(meta["train"]["masked_accuracy_by_epoch"]) == 8


@pytest.mark.slow
def test_transcription_starts_from_the_pretrained_encoder(ssl_run, capsys):
    from seehear.engine.transfer import init_encoder
    from seehear.models.transcriber import build_transcriber

    root, data, _ = ssl_run
    src = {k.removeprefix("acoustic."): v for k, v in load_file(str(root / "ssl" / "model.safetensors")).items()
           if k.startswith("acoustic.")}
    cfg = RunConfig.from_dict(json.loads((root / "ssl" / "meta.json").read_text())["config"])
    cfg.model.init_from = str(root / "ssl")
    torch.manual_seed(0)
    net = build_transcriber(cfg, ["_", "a", "b", "c"])
    fresh_head = net.acoustic.head.weight.clone()
    info = init_encoder(net.acoustic, root / "ssl", cfg)
    for k, v in net.acoustic.state_dict().items():  # step 0: the encoder is the pretrained one, the head is new
        assert torch.equal(v, src[k]) != k.startswith("head."), k
    assert torch.equal(net.acoustic.head.weight, fresh_head) and info["head"] == "new"

    r = seehear.train(_kaldi(root, data), root / "asr", task="transcribe", from_run=root / "ssl", progress=False,
                      overrides=DOWN)
    t = r.meta["transfer"]
    assert t["source_task"] == "pretrain" and len(t["sha256"]) == 64 and r.meta["status"] == "done"
    assert r.meta["config"]["model"]["name"] == "conformer_ctc_tiny"  # the source's model and features
    assert r.meta["config"]["audio"]["normalize"] == "global" and r.meta["train"]["steps"] > 0
    # its test files were pretrained on: said on stderr and in meta.json
    assert "pretrain only on audio that is not in any test set" in t["warning"]
    assert "pretrain only on audio" in capsys.readouterr().err


@pytest.mark.slow
def test_keyword_classification_starts_from_the_pretrained_encoder(ssl_run):
    root, _, _ = ssl_run
    words = make_tones(root / "words", classes=2, per_class=6, seconds=0.6, seed=7)
    r = seehear.train(words, root / "kws", from_run=root / "ssl", progress=False,
                      overrides=["train.threads=1", "data.workers=1", "train.epochs=2"])
    assert r.meta["config"]["model"]["name"] == "ssl_encoder"
    assert r.meta["config"]["model"]["kwargs"]["encoder"] == "conformer_ctc_tiny"
    assert r.meta["transfer"]["head"] == "new" and "warning" not in r.meta["transfer"]  # other files


@pytest.mark.slow
def test_bad_input_gets_one_line(ssl_run, tmp_path, capsys):
    root, data, _ = ssl_run
    kaldi = _kaldi(root, data)
    with pytest.raises(ConfigError, match=r"n_mels=80 .* n_mels=40"):  # another feature setting: named
        seehear.train(kaldi, tmp_path / "a", task="transcribe", from_run=root / "ssl", progress=False,
                      overrides=[*DOWN, "audio.n_mels=40"])
    img = tmp_path / "imgrun"  # a finished run of another modality
    img.mkdir()
    (img / "model.safetensors").write_bytes(b"")
    (img / "meta.json").write_text(json.dumps({"modality": "image", "task": "classify",
                                               "config": RunConfig().to_dict()}))
    with pytest.raises(ConfigError, match="is an image run but the data is audio"):
        seehear.train(kaldi, tmp_path / "b", task="transcribe", from_run=img, progress=False, overrides=DOWN)
    few = make_tones(tmp_path / "few", classes=2, per_class=3, seconds=0.3)
    with pytest.raises(DataError, match="has 6 recording"):
        pretrain(few, tmp_path / "c", progress=False)
    assert main(["pretrain", str(data), "--out", str(tmp_path / "d"), "--method", "hubert"]) == 2
    err = capsys.readouterr().err
    assert "not built" in err and "masked" in err and "contrastive" in err and len(err.strip().splitlines()) == 1
    assert main(["pretrain", str(data), "--out", str(tmp_path / "e"), "--method", "simclr"]) == 2
    assert "on audio use masked or contrastive" in capsys.readouterr().err


def test_contrastive_run_is_a_run(tmp_path):
    data = make_tones(tmp_path / "pool", classes=2, per_class=10, seconds=0.4, seed=2)
    r = pretrain(data, tmp_path / "ssl", method="contrastive", epochs=1, progress=False, overrides=FAST)
    meta = json.loads((tmp_path / "ssl" / "meta.json").read_text())
    assert meta["pretrain"]["method"] == "contrastive" and 0 <= r.metrics["masked_accuracy"] <= 1
    assert load_file(str(tmp_path / "ssl" / "model.safetensors"))["acoustic.head.weight"].shape[0] == 16

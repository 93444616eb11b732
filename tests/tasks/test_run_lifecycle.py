"""The run lifecycle every task shares (tasks/base.py, engine/run_folder.py): a run folder never costs the user a
file, its config is read back whole or not at all, and it stands on its own."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import seehear
from seehear.cli import main
from seehear.errors import ConfigError, RunError

pytestmark = pytest.mark.slow
FAST = ["train.epochs=2", "train.threads=1", "train.batch_size=16", "data.workers=1", "model.name=small_cnn",
        "train.optimizer=adamw", "train.lr=0.003"]


@pytest.fixture(scope="module")
def small_images(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    return make_shape_images(tmp_path_factory.mktemp("small") / "shapes", classes=2, per_class=16, size=16)


def _tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _run(data, out, extra=(), **kw):
    return seehear.train(data, out, overrides=[*FAST, *extra], progress=False, **kw)


def test_overwrite_never_replaces_what_is_not_a_run(small_images, tmp_path, monkeypatch):
    before = _tree(small_images)
    # the data itself, a folder holding the data, and a folder of the user's files
    holder = small_images.parent
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    for out in (small_images, holder, user):
        with pytest.raises(RunError, match="will not replace"):
            _run(small_images, out, overwrite=True)
    assert (user / "notes.txt").read_text() == "keep me"
    # the current folder and the home folder, even when they look like runs
    for guarded in (tmp_path / "cwd", tmp_path / "home"):
        guarded.mkdir()
        (guarded / "meta.json").write_text("{}")
        (guarded / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for out in (Path("."), tmp_path / "home"):
        with pytest.raises(RunError, match="will not replace"):
            _run(small_images, out, overwrite=True)
    assert (tmp_path / "cwd" / "thesis.tex").is_file() and (tmp_path / "home" / "thesis.tex").is_file()
    assert _tree(small_images) == before


def test_overwrite_replaces_a_run_and_keeps_it_if_the_new_one_fails_early(small_images, tmp_path):
    out = tmp_path / "run"
    _run(small_images, out)
    old = _tree(out)
    # a run with a user's file inside is not ours to delete
    (out / "my-notes.txt").write_text("mine")
    with pytest.raises(RunError, match="did not write"):
        _run(small_images, out, overwrite=True)
    (out / "my-notes.txt").unlink()
    # the new run fails before its first checkpoint: the old run is put back, byte for byte
    with pytest.raises(ConfigError):
        _run(small_images, out, extra=["model.name=conformer_ctc"], overwrite=True)
    assert _tree(out) == old
    assert not any(p.name.startswith(".run.replaced") for p in tmp_path.iterdir())
    # a good new run replaces it
    r = _run(small_images, out, extra=["train.seed=1"], overwrite=True)
    assert r.meta["config"]["train"]["seed"] == 1 and (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_damaged_config_is_never_read_back_as_defaults(small_images, tmp_path, capsys):
    out = tmp_path / "run"
    _run(small_images, out)
    text = (out / "config.yaml").read_text()
    for damaged in ("", text[: len(text) // 3]):
        (out / "config.yaml").write_text(damaged)
        assert main(["train", str(small_images), "--out", str(out), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("incomplete or damaged" in err or "not valid YAML" in err), err


def test_pretrained_weights_travel_inside_the_run(small_images, tmp_path):
    src = _run(small_images, tmp_path / "source")
    weights = tmp_path / "backbone.safetensors"
    shutil.copy(src.run_dir / "model.safetensors", weights)
    r = _run(small_images, tmp_path / "transfer", extra=[f"model.pretrained={weights}"])
    assert r.meta["config"]["model"]["pretrained"] == str(weights)
    expected = seehear.predict(r.run_dir, small_images)
    weights.unlink()  # the file the run started from is gone: the run still loads, predicts and exports
    assert seehear.predict(r.run_dir, small_images) == expected
    from seehear.deploy.onnx import export_onnx

    assert export_onnx(r.run_dir).is_file()


def test_predict_streams_its_inputs_in_chunks(small_images, tmp_path, monkeypatch):
    import seehear.tasks.classify as classify

    r = _run(small_images, tmp_path / "run")
    whole = seehear.predict(r.run_dir, small_images)
    seen = []
    real = classify.decode_all
    monkeypatch.setattr(classify, "CHUNK", 5)
    monkeypatch.setattr(classify, "decode_all", lambda recs, *a, **k: seen.append(len(recs)) or real(recs, *a, **k))
    chunked = seehear.predict(r.run_dir, small_images)
    assert max(seen) == 5 and sum(seen) == len(whole) == 32
    key = lambda rows: sorted((x["file"], x["label"]) for x in rows)  # noqa: E731
    assert key(chunked) == key(whole)


@pytest.mark.parametrize("setting, says", [
    ("audio.crop=middle", "center, start, energy"), ("image.resize=squash", "stretch, pad, crop"),
    ("train.precision=half", "auto, bf16"), ("train.accelerator=tpu", "auto, cpu, gpu"),
    ("image.tta=rotate", "none, flip"), ("transcribe.decoder=viterbi", "greedy, beam"),
    ("transcribe.units=bytes", "char, sentencepiece"), ("audio.normalize=loud", "utterance, global, none"),
])
def test_unknown_choices_are_one_line_errors_naming_the_choices(setting, says, small_images, tmp_path, capsys):
    assert main(["train", str(small_images), "--out", str(tmp_path / "r"), "--set", setting, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_model_of_another_task_and_missing_gpu_are_one_line_errors(small_images, tmp_path, capsys):
    assert main(["train", str(small_images), "--out", str(tmp_path / "a"), "--model", "conformer_ctc",
                 "--quiet"]) == 2
    assert "transcribe model" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", str(small_images), "--out", str(tmp_path / "b"), "--set", "train.accelerator=gpu",
                     "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no usable GPU" in err


def test_mixup_is_used_in_training(small_images, tmp_path):
    plain = _run(small_images, tmp_path / "plain", extra=["train.deterministic=true"])
    mixed = _run(small_images, tmp_path / "mixed", extra=["train.deterministic=true", "augment.mixup=0.4"])
    csv = lambda r: (r.run_dir / "logs" / "metrics.csv").read_text()  # noqa: E731
    assert csv(plain) != csv(mixed)  # same seed and data: only mixup differs
    assert json.loads((mixed.run_dir / "meta.json").read_text())["config"]["augment"]["mixup"] == 0.4

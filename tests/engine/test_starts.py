"""Default starting points (engine/starts.py, `seehear start`): a photo run that names no start of its own starts
from $SEEHEAR_HOME/start/image-photo when it is set and fits, else from scratch with one warning line; meta.json and
report.html say which. SEEHEAR_HOME points into tmp_path: the real home is never touched."""
import json

import pytest

import seehear
from seehear.cli import main
from seehear.data.sources import load_source
from seehear.data.synth import make_shape_images
from seehear.engine import starts
from seehear.engine.transfer import sha256
from seehear.tasks.classify import TASK

QUICK = ["train.epochs=1", "train.threads=1", "train.batch_size=16", "data.workers=1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    # 64 px: the image-photo recipe (median side >= 64), the one that takes a default start
    return make_shape_images(tmp_path_factory.mktemp("photos") / "p", classes=2, per_class=10, size=64, plain=True)


@pytest.fixture(scope="module")
def start_run(photos, tmp_path_factory):
    """A finished photo run (small_cnn at 64x64) to serve as the default start."""
    out = tmp_path_factory.mktemp("start") / "src"
    return seehear.train(photos, out, overrides=[*QUICK, "model.name=small_cnn"], progress=False).run_dir


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEHEAR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _resolve(photos, overrides=(), user=None):
    cfg, recipe = TASK.resolve(load_source(photos), user or {}, list(overrides))
    assert recipe == "image-photo"
    return cfg


def test_set_show_clear(start_run, home, tmp_path, capsys):
    assert main(["start", "show"]) == 0
    assert "image-photo: not set" in capsys.readouterr().out
    assert main(["start", "set", "image-photo", str(start_run)]) == 0
    dest = home / "start" / "image-photo"
    rec = json.loads((dest / "start.json").read_text())
    assert rec["sha256"] == sha256(start_run / "model.safetensors") and rec["from"] == str(start_run.resolve())
    assert {"model.safetensors", "meta.json", "config.yaml"} <= set(rec["files"])
    capsys.readouterr()
    assert main(["start", "show"]) == 0
    assert f"image-photo: set from {start_run.resolve()}" in capsys.readouterr().out
    # not an image run, not a run, not a recipe with a default start: one line each, nothing written
    for args, words in ((["start", "set", "image-photo", str(tmp_path / "nothing")], "not a finished"),
                        (["start", "set", "image-small", str(start_run)], "takes no default start")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and err.count("\n") == 0
    # clear removes what `start set` wrote and nothing else
    (dest / "notes.txt").write_text("mine")
    assert main(["start", "clear", "image-photo"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert main(["start", "clear", "image-photo"]) == 2  # no start.json: not seehear's to remove
    assert "was not set by `seehear start set`" in capsys.readouterr().err


def test_audio_run_is_refused(home, tmp_path):
    """A finished run of another modality cannot become the photo start (its meta.json says audio)."""
    fake = tmp_path / "audio-run"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"x")
    (fake / "meta.json").write_text(json.dumps({"modality": "audio", "task": "classify",
                                                "config": {"model": {"name": "tcresnet8"}}}))
    with pytest.raises(seehear.errors.ConfigError, match=r"is a run on audio \(task classify\); the image-photo start"):
        starts.set_default("image-photo", fake)
    assert not (home / "start" / "image-photo").exists()


def test_default_start_is_used_unless_the_run_names_its_own(photos, start_run, home, tmp_path):
    starts.set_default("image-photo", start_run)
    dest = str((home / "start" / "image-photo").resolve())
    cfg = _resolve(photos)
    assert cfg.model.init_from == dest and cfg.model.name == "small_cnn" and cfg.image.size == 64
    # opting out, naming a model, naming another start: the default is not used
    assert _resolve(photos, ["model.start=scratch"]).model.init_from is None
    assert _resolve(photos, ["model.start=scratch"]).model.name == "fastnet"
    named = _resolve(photos, user={"model": {"name": "fastnet"}})
    assert named.model.init_from is None and named.model.name == "fastnet"
    assert _resolve(photos, ["model.name=resnet8"]).model.init_from is None
    assert _resolve(photos, user={"model": {"init_from": str(start_run)}}).model.init_from == str(start_run)
    with pytest.raises(seehear.errors.ConfigError, match="model.start must be one of auto, scratch"):
        _resolve(photos, ["model.start=maybe"])


def test_unfitting_default_warns_and_trains_from_scratch(photos, start_run, home, capsys):
    starts.set_default("image-photo", start_run)
    cfg = _resolve(photos, ["image.size=48"])  # the start saw 64x64 images
    assert cfg.model.init_from is None and cfg.model.name == "fastnet" and cfg.image.size == 48
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: the default start") and "64x64 images but this run uses 48x48" in err
    assert "training from scratch" in err and err.count("\n") == 0
    cfg = _resolve(photos, ["model.kwargs.width=8"])  # the source's model, other widths: tensors do not fit
    assert cfg.model.init_from is None
    assert "shape mismatch" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["empty", "bad_json", "not_a_run", "truncated_weights", "a_file", "by_hand"])
def test_damaged_default_is_one_warning_never_a_traceback(photos, start_run, home, capsys, damage):
    dest = home / "start" / "image-photo"
    if damage == "a_file":
        dest.parent.mkdir(parents=True)
        dest.write_text("not a folder")
    elif damage == "empty":
        dest.mkdir(parents=True)
    else:
        starts.set_default("image-photo", start_run)
        if damage == "bad_json":
            (dest / "meta.json").write_text("{cut off")
        elif damage == "not_a_run":
            (dest / "meta.json").write_text(json.dumps({"modality": "image", "config": {}}))
        else:  # by_hand: a run folder copied in without start.json; its weights are found bad when loaded
            (dest / "model.safetensors").write_bytes((dest / "model.safetensors").read_bytes()[:1000])
            if damage == "by_hand":
                (dest / "start.json").unlink()
    cfg = _resolve(photos)
    assert cfg.model.init_from is None and cfg.model.name == "fastnet"
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: the default start") and err.count("\n") == 0, err
    assert "Traceback" not in err
    assert main(["start", "show"]) == 0
    assert ("image-photo: damaged" in capsys.readouterr().out) == (damage != "by_hand")  # show loads no weights


@pytest.mark.slow
def test_runs_record_and_report_their_start(photos, start_run, home, tmp_path):
    scratch = seehear.train(photos, tmp_path / "scratch", overrides=QUICK, progress=False)
    s = json.loads((scratch.run_dir / "meta.json").read_text())["start"]
    assert s["kind"] == "scratch" and s["source"] is None and "no default start is set" in s["why"]
    assert "seehear start set image-photo RUN" in s["hint"]
    page = (scratch.run_dir / "report.html").read_text()
    assert "<b>Started from:</b> scratch — no default start is set" in page and "seehear start set image-photo" in page

    starts.set_default("image-photo", start_run)
    moved = seehear.train(photos, tmp_path / "moved", overrides=QUICK, progress=False)
    meta = json.loads((moved.run_dir / "meta.json").read_text())
    want = sha256(start_run / "model.safetensors")
    assert meta["start"] == {"kind": "run", "source": str((home / "start" / "image-photo").resolve()),
                             "sha256": want, "why": meta["start"]["why"]}
    assert "default start for image-photo" in meta["start"]["why"] and meta["transfer"]["sha256"] == want
    assert meta["config"]["model"]["name"] == "small_cnn"
    page = (moved.run_dir / "report.html").read_text()
    assert f"<b>Started from:</b> run {meta['start']['source']} (SHA-256 {want[:12]}" in page

    # local weights the user names win over the default start, and are recorded as such
    weights = start_run / "model.safetensors"
    named = seehear.train(photos, tmp_path / "named", overrides=[*QUICK, "model.name=small_cnn",
                                                                f"model.pretrained={weights}"], progress=False)
    s = json.loads((named.run_dir / "meta.json").read_text())["start"]
    assert s == {"kind": "weights", "source": str(weights.resolve()), "sha256": want,
                 "why": "model.pretrained (local weights you named)"}

"""The command line: one-line errors with a non-zero exit and no traceback; the commands a user types."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seehear.cli import main, parse_duration


def run_cli(*args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "seehear", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_parse_duration():
    assert parse_duration("90") == 90 and parse_duration("5m") == 300 and parse_duration("1.5h") == 5400


@pytest.mark.parametrize("args", [
    ["data", "check", "/no/such/folder"],
    ["train", "/no/such/folder", "--out", "{tmp}/r"],
    ["train", "{tmp}/empty", "--out", "{tmp}/r"],
    ["evaluate", "{tmp}/no-run", "{tmp}/empty"],
    ["predict", "{tmp}/no-run", "x.wav"],
    ["train", "{tmp}/empty", "--out", "{tmp}/r", "--config", "{tmp}/missing.yaml"],
    ["train", "{tmp}/empty", "--out", "{tmp}/r", "--set", "train.nope=1"],
])
def test_user_errors_are_one_line(args, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("seehear: error: ") and "\n" not in err and "Traceback" not in err


def test_models_lists_both_modalities(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "image" in out and "audio" in out and "bcresnet" in out


def test_data_check_writes_json(shapes_dir, tmp_path, capsys):
    assert main(["data", "check", str(shapes_dir), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["modality"] == "image" and sum(report["classes"].values()) == 180


@pytest.mark.slow
def test_train_killed_then_resumed(shapes_dir, tmp_path):
    """A run killed (SIGKILL) mid-training continues from its last checkpoint and finishes all epochs."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "seehear", "train", str(shapes_dir), "--out", str(out), "--model", "small_cnn",
            "--epochs", "12", "--set", "train.threads=1", "--set", "train.batch_size=8", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 180
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "training"  # it really died before finishing
    import torch

    done_before = torch.load(ckpt, weights_only=True)["epoch"] + 1  # epochs finished before the kill
    r = run_cli("train", shapes_dir, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "done" and meta["train"]["resumed"] is True
    assert meta["train"]["epochs_run"] == 12
    # the resumed process trained only the epochs that were missing, starting after the checkpoint
    epochs = [int(line.split()[1].split("/")[0]) for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert epochs == list(range(done_before + 1, 13))
    assert (out / "model.safetensors").is_file() and (out / "report.html").is_file()


@pytest.mark.slow
def test_cli_predict_formats(shapes_dir, tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", shapes_dir, "--out", out, "--model", "small_cnn", "--epochs", "2", "--set",
                "train.threads=1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout and "report.html" in r.stdout
    f = next(shapes_dir.rglob("*.png"))
    js = run_cli("predict", out, f, "--format", "json")
    rows = json.loads(js.stdout)
    assert rows[0]["file"] == str(f) and rows[0]["label"] in json.loads((out / "meta.json").read_text())["labels"]
    csv = run_cli("predict", out, f, "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("file,label,probability")
    tab = run_cli("predict", out, f)
    assert rows[0]["label"] in tab.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_says_how_to_resume(sig, shapes_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "seehear", "train", str(shapes_dir), "--out", str(out),
                             "--model", "small_cnn", "--epochs", "200", "--set", "train.threads=1", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    assert (out / "checkpoints" / "last.ckpt").is_file()

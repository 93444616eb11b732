"""report.html from a fake run folder: self-contained, shows the numbers, escapes whatever the user named."""
import base64
import json

import numpy as np
import pytest

from seehear.errors import RunError
from seehear.evaluation import compute_metrics, write_report

EVIL = "<script>alert(1)</script>"
# a real (1x1) PNG is not needed: the report embeds bytes as they are
FAKE_PNG = b"\x89PNG\r\n\x1a\nfake-confusion-bytes"


@pytest.fixture
def run_dir(tmp_path):
    labels = ["cat", EVIL, "dog & co"]
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 2, 0])  # 6 of 8 right
    probs = np.eye(3)[pred] * 0.9 + 0.1 / 3
    groups = ["alice", "alice", "bob", "bob", "bob", "carol", "carol", "carol"]
    test = compute_metrics(y, probs, labels, groups=groups)
    valid = compute_metrics(y[:4], probs[:4], labels)
    meta = {"seehear_version": "0.1.0", "created": "2025-01-01T00:00:00", "modality": "image", "labels": labels,
            "model": {"name": "resnet_tiny", "kwargs": {"width": 16}, "params": 1_234_567},
            "input": {"size": 32, "channels": 3},
            "data": {"source": "/data/pets", "kind": "folder", "counts": {"train": 80, "valid": 10, "test": 8}},
            "train": {"epochs_run": 7, "wall_seconds": 83.4, "device": "cpu", "precision": "32"},
            "versions": {"torch": "2.11.0"}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "metrics.json").write_text(json.dumps({"test": test, "valid": valid}))
    (tmp_path / "skipped.json").write_text(json.dumps([["pets/cat/<b>broken</b>.png", "truncated file"]]))
    (tmp_path / "config.yaml").write_text("model: resnet_tiny\nnote: '<i>hi</i>'\n")
    (tmp_path / "confusion.png").write_bytes(FAKE_PNG)
    (tmp_path / "extra_plot.png").write_bytes(b"\x89PNG\r\n\x1a\nother")
    return tmp_path


def test_report_contents(run_dir):
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    html = out.read_text(encoding="utf-8")
    assert "75.0%" in html  # test accuracy, 6/8
    assert "cat" in html and "dog &amp; co" in html
    assert "alice" in html and "carol" in html  # per-group table
    assert "resnet_tiny" in html and "1.23 M" in html and "1 min 23 s" in html
    assert "train 80" in html and "/data/pets" in html
    assert base64.b64encode(FAKE_PNG).decode() in html  # embedded, not linked
    assert "Extra plot" in html  # unknown PNGs are still shown, after the known ones
    assert html.index("Confusion matrix") < html.index("Extra plot")
    assert "truncated file" in html and "&lt;b&gt;broken&lt;/b&gt;.png" in html
    assert "&lt;i&gt;hi&lt;/i&gt;" in html  # config.yaml shown escaped


def test_report_escapes_and_is_self_contained(run_dir):
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()  # no injected label and no JS of our own
    assert "<b>" not in html and "<i>hi" not in html
    assert "http://" not in html and "https://" not in html and "<link" not in html


def test_report_from_sparse_run_folder(tmp_path):
    # a run that died before evaluation: no metrics, no plots, no meta; still a page, and it says so
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No metrics.json" in html and "<img" not in html
    # a bare compute_metrics dict (no test/valid wrapper) is accepted as well
    m = compute_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["yes", "no"])
    (tmp_path / "metrics.json").write_text(json.dumps(m))
    (tmp_path / "skipped.json").write_text("[]")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "100.0%" in html and "No files were skipped" in html


def test_report_errors(tmp_path):
    with pytest.raises(RunError):
        write_report(tmp_path / "missing")
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match="metrics.json"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_report_shows_training_counts_beside_recall(tmp_path):
    import re

    labels = ["common", "rare"]
    y, pred = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 0, 0, 1])
    m = compute_metrics(y, np.eye(2)[pred], labels)
    meta = {"modality": "image", "labels": labels,
            "data": {"counts": {"train": 101}, "train_per_class": {"common": 97, "rare": 4}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "metrics.json").write_text(json.dumps({"test": m}))
    (tmp_path / "augmented.wav").write_bytes(b"RIFF")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "trained on" in html
    rare_row = re.search(r"<tr[^>]*><td>rare</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rare_row)
    assert cells[0] == "4" and cells[2] == "0.500"  # 4 training examples, recall 1 of 2
    assert 'src="augmented.wav"' in html

"""Plots are written as real PNGs for awkward inputs: many classes, sparse CSV logs, missing columns."""
import numpy as np

from seehear.evaluation import compute_metrics, plot_confusion, plot_curves, plot_reliability
from seehear.evaluation.plots import _read_metrics_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    # IHDR width/height, big-endian, right after the signature and chunk header
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_confusion_small_and_30_classes(tmp_path):
    y = np.array([0, 1, 2, 2])
    small = plot_confusion(compute_metrics(y, np.eye(3)[[0, 1, 1, 2]], ["a", "b", "c"]), tmp_path / "c3.png")
    rng = np.random.default_rng(0)
    y30 = rng.integers(0, 30, 300)
    p30 = np.eye(30)[np.where(rng.random(300) < 0.7, y30, rng.integers(0, 30, 300))]
    m30 = compute_metrics(y30, p30, [f"a rather long class name {i}" for i in range(30)])
    del m30["labels"]  # older metrics.json without "labels": names come from per_class
    big = plot_confusion(m30, tmp_path / "sub" / "c30.png")
    assert big == tmp_path / "sub" / "c30.png"
    (w3, h3), (w30, h30) = png_size(small), png_size(big)
    assert w30 > w3 and h30 > h3  # the canvas grows with the class count so labels stay readable


def test_confusion_with_empty_true_row(tmp_path):
    # a class with no test examples must not produce NaNs (division by a zero row total)
    m = compute_metrics([0, 0, 1], np.eye(3)[[0, 2, 1]], ["a", "b", "c"])
    assert png_size(plot_confusion(m, tmp_path / "c.png"))[0] > 100


LIGHTNING_CSV = """epoch,step,train_loss_step,train_acc_step,val_loss,val_acc,train_loss_epoch,train_acc_epoch,lr-AdamW
0,9,2.0,0.2,,,,,0.001
0,19,1.0,0.4,,,,,0.001
0,19,,,1.5,0.5,,,
0,19,,,,,1.6,0.3,
1,29,0.8,0.7,,,,,0.0005
1,39,0.6,0.8,,,,,0.0005
1,39,,,0.9,0.75,,,
1,39,,,,,0.7,0.75,
"""


def test_curves_from_sparse_lightning_csv(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(LIGHTNING_CSV)
    xname, series = _read_metrics_csv(csv_path)
    assert xname == "epoch"
    assert series["val_loss"] == {0.0: [1.5], 1.0: [0.9]}  # blank cells skipped, not read as 0 or NaN
    assert series["train_loss_step"][0.0] == [2.0, 1.0]
    assert png_size(plot_curves(csv_path, tmp_path / "curves.png"))[0] > 100


def test_curves_without_val_or_epoch_columns(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("step,train_loss\n0,2.0\n1,nan\n2,1.2\n")
    xname, series = _read_metrics_csv(csv_path)
    assert xname == "step" and series["train_loss"] == {0.0: [2.0], 2.0: [1.2]}
    assert png_size(plot_curves(csv_path, tmp_path / "curves.png"))[0] > 100
    # nothing plottable at all still gives a (labelled, empty) figure rather than an exception
    (tmp_path / "empty.csv").write_text("epoch,step\n")
    assert png_size(plot_curves(tmp_path / "empty.csv", tmp_path / "empty.png"))[0] > 100


def test_reliability(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, 200)
    assert png_size(plot_reliability(p, y, tmp_path / "rel.png"))[0] > 100

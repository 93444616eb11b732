import numpy as np
import torch

from seehear.trust.embeddings import embed, embedding_maps, project
from seehear.trust.label_issues import find_issues, label_issue_rows


def test_embeddings_separate_the_classes(patch_model, patch_data, tmp_path):
    _, (x, y) = patch_data
    e = embed(patch_model, x[:64])
    assert e.shape == (64, 32)  # small_cnn width 8: the head reads 4 x 8 features
    pts = project(e.numpy(), "pca")
    c0, c1 = pts[y[:64].numpy() == 0].mean(0), pts[y[:64].numpy() == 1].mean(0)
    spread = pts.std(0).mean()
    assert np.linalg.norm(c0 - c1) > spread  # the trained model keeps its two classes apart
    with torch.no_grad():
        pred = patch_model(x[:64]).argmax(1)
    out = embedding_maps(patch_model, x[:64], y[:64], pred, tmp_path)
    for k in ("pca", "tsne"):
        assert (tmp_path / f"embeddings_{k}.png").stat().st_size > 1000 and out[k].endswith(".png")


def test_flipped_labels_are_found():
    rng = np.random.default_rng(0)
    n, k = 300, 3
    y_true = rng.integers(0, k, n)
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), y_true] = 0.9
    probs += rng.uniform(0, 0.05, (n, k))
    probs /= probs.sum(1, keepdims=True)
    given = y_true.copy()
    flipped = rng.choice(n, 15, replace=False)
    given[flipped] = (given[flipped] + 1) % k
    idx, method = find_issues(given, probs)
    assert "cleanlab" in method
    assert set(flipped) <= set(idx) or len(set(flipped) & set(idx)) >= 14
    rows = label_issue_rows([f"f{i}" for i in range(n)], given, probs, ["a", "b", "c"])
    assert rows["listed"][0]["given"] != rows["listed"][0]["predicted"]


def test_fallback_when_a_class_has_no_examples():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    probs = np.array([[0.9, 0.05, 0.05]] * 4 + [[0.1, 0.85, 0.05]] * 3 + [[0.1, 0.8, 0.1]])
    idx, method = find_issues(y, probs)
    assert method.startswith("self-confidence ranking")
    assert 7 in idx  # the only example whose label the model contradicts

"""Test embeddings on a 2-D map: the input of the classifier's last linear layer (what the head separates), by
PCA and by t-SNE (scikit-learn), coloured by class and by right/wrong. Misclassified points sitting deep inside
another class's cloud are the ones worth a look (mislabelled, or genuinely ambiguous)."""
from __future__ import annotations

import numpy as np
import torch

from seehear.models.embedding import embed_and_logits, last_linear
from seehear.trust.attribution import features_of

MAX_TSNE = 2000  # t-SNE is quadratic-ish; a sample of this many shows the structure


@torch.no_grad()
def embed(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """[N, D] penultimate features (`seehear.models.embedding`: the input of the last nn.Linear that runs; the
    logits if there is none) of raw inputs."""
    model.eval()
    if not len(x):
        return torch.zeros(0, 0)
    head = last_linear(model.backbone, features_of(model, x[:1]))
    out = [embed_and_logits(model.backbone, features_of(model, x[i:i + batch_size]), head)[0].float().cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def project(emb: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    emb = np.asarray(emb, dtype=np.float64)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(emb)
    from sklearn.manifold import TSNE

    n = len(emb)
    if emb.shape[1] > 50:  # the usual t-SNE recipe: PCA to 50 dims first (faster, less noise)
        emb = PCA(n_components=min(50, n), random_state=seed).fit_transform(emb)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(emb)


def embedding_maps(model, x: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, out_dir, seed: int = 0) -> dict:
    """PCA and t-SNE maps of (a sample of) the inputs as PNGs; returns their paths and what was drawn."""
    from pathlib import Path

    from seehear.trust.plots import plot_embedding

    n = len(y)
    if n < 5:
        return {"skipped": f"{n} examples are too few for a map"}
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MAX_TSNE].sort().values
    emb = embed(model, x[idx]).numpy()
    yy, correct = y[idx].numpy(), (pred[idx] == y[idx]).numpy()
    out = {"n": int(len(idx)), "dim": int(emb.shape[1])}
    for method in ("pca", "tsne"):
        pts = project(emb, method, seed)
        out[method] = str(plot_embedding(pts, yy, correct, model.labels, method.upper() if method == "pca" else
                                         "t-SNE", Path(out_dir) / f"embeddings_{method}.png"))
    return out

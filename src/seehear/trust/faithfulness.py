"""How faithful an attribution is: deletion and insertion curves (Petsiuk et al. 2018, RISE). Positions are
replaced, in the order the map ranks them, by a heavily blurred copy of the input (box blur over a quarter of
each side): the target probability should fall fast (low deletion AUC). Inserting them in that order into the
blurred copy should raise it fast (high insertion AUC). A blurred reference rather than a constant: setting a
region to the data mean keeps its silhouette, which a shape classifier still reads, so a map that finds the
object would look unfaithful. Each curve is compared with a random ranking of blocks (an 8 x 8 grid, the
granularity of a Grad-CAM map; scattered random pixels would wreck an image far faster than any region):
deletion ratio < 1 and insertion ratio > 1 mean the map beats chance."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from seehear.trust.attribution import backbone_fn, features_of


@torch.no_grad()
def _curves(fn, f: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, steps: int) -> tuple[torch.Tensor, ...]:
    b, hw = len(f), maps[0].numel()
    rank = torch.argsort(maps.reshape(b, hw), dim=1, descending=True)
    dele, ins = [], []
    h, w = f.shape[-2:]
    kh, kw = max(1, h // 4) | 1, max(1, w // 4) | 1  # odd box sizes, so the blurred copy keeps its shape
    blurred = F.avg_pool2d(F.pad(f, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate"), (kh, kw), 1)
    for k in range(steps + 1):
        n = round(k * hw / steps)
        top = torch.zeros(b, hw, dtype=torch.bool)
        top.scatter_(1, rank[:, :n], True)
        top = top.reshape(b, 1, *f.shape[-2:]).to(f.device)
        for store, xin in ((dele, torch.where(top, blurred, f)), (ins, torch.where(top, f, blurred))):
            p = torch.softmax(fn(xin).float(), 1).gather(1, target[:, None].to(f.device))[:, 0]
            store.append(p.cpu())
    d, i = torch.stack(dele, 1), torch.stack(ins, 1)  # [B, steps + 1]
    auc = lambda c: torch.trapezoid(c, dx=1.0 / steps, dim=1)  # noqa: E731
    return auc(d), auc(i)


def deletion_insertion(model, x: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, steps: int = 16,
                       batch_size: int = 64, seed: int = 0) -> dict:
    """Mean deletion/insertion AUC of `maps`, of a random ranking, and their ratios."""
    f = features_of(model, x)
    fn = backbone_fn(model)
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand(len(maps), 1, 8, 8, generator=g)
    rand = F.interpolate(grid, size=maps.shape[-2:], mode="nearest")[:, 0]
    rand = rand + 1e-3 * torch.rand(rand.shape, generator=g) / 8  # ties within a block broken at random
    sums = {"deletion": 0.0, "insertion": 0.0, "deletion_random": 0.0, "insertion_random": 0.0}
    for i in range(0, len(f), batch_size):
        sl = slice(i, i + batch_size)
        d, ins = _curves(fn, f[sl], target[sl], maps[sl], steps)
        dr, ir = _curves(fn, f[sl], target[sl], rand[sl], steps)
        for key, v in (("deletion", d), ("insertion", ins), ("deletion_random", dr), ("insertion_random", ir)):
            sums[key] += float(v.sum())
    n = max(1, len(f))
    m = {f"{k}_auc": v / n for k, v in sums.items()}
    m["deletion_auc_vs_random"] = m["deletion_auc"] / m["deletion_random_auc"] if m["deletion_random_auc"] else None
    m["insertion_auc_vs_random"] = (m["insertion_auc"] / m["insertion_random_auc"]
                                    if m["insertion_random_auc"] else None)
    m["n"], m["steps"] = int(len(f)), steps
    return m

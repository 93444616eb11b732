"""Episodes (Vinyals et al. 2016; Snell et al. 2017): a few classes, a few labelled examples of each (the support)
and more of each to classify (the queries). Training draws them from the training split (engine/episodic.py);
few-shot evaluation draws them from classes the model never saw (tasks/fewshot.py).

A batch is (x, y): the support first, then the queries, each grouped by class; y are the data set's labels, so the
step knows the classes and, from the shots, where the support ends. An item is never both support and query.
"""
from __future__ import annotations

import torch

from seehear.engine.loaders import EpochCounter
from seehear.errors import ConfigError, DataError


def check_episodes(y: torch.Tensor, ways: int, shots: int, queries: int, names=None, what: str = "training") -> None:
    """One-line errors for episodes that the labels `y` cannot fill."""
    if ways < 2 or shots < 1 or queries < 1:
        raise ConfigError(f"episodes need at least 2 ways, 1 shot and 1 query, got ways={ways}, shots={shots}, "
                          f"queries={queries}")
    counts = torch.bincount(y)
    present = [c for c in range(len(counts)) if counts[c] > 0]
    if len(present) < ways:
        raise DataError(f"{ways}-way episodes need {ways} classes, but the {what} data has {len(present)}; "
                        f"ask for fewer ways")
    for c in present:
        if counts[c] < shots + queries:
            name = names[c] if names is not None else c
            raise DataError(f"class {name!r} has {int(counts[c])} {what} examples, fewer examples than the shots "
                            f"asked for plus the queries ({shots} + {queries}); ask for fewer or give it more")


def by_class(y: torch.Tensor) -> dict[int, torch.Tensor]:
    """{class: indices of its examples}."""
    return {int(c): (y == c).nonzero().flatten() for c in y.unique()}


def sample_episode(support: dict[int, torch.Tensor], ways: int, shots: int, queries: int, g: torch.Generator,
                   query: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(support indices [ways*shots], query indices, classes): `ways` classes at random; for each, `shots` support
    items and `queries` query items, all distinct. With a separate `query` pool (validation: support from the
    training split, queries from the validation split), up to `queries` of each class come from it instead."""
    pool = sorted(support if query is None else set(support) & set(query))
    classes = [pool[i] for i in torch.randperm(len(pool), generator=g)[:ways].tolist()]
    s_idx, q_idx = [], []
    for c in classes:
        own = support[c][torch.randperm(len(support[c]), generator=g)]
        s_idx.append(own[:shots])
        if query is None:
            q_idx.append(own[shots:shots + queries])
        else:
            q_idx.append(query[c][torch.randperm(len(query[c]), generator=g)[:queries]])
    return torch.cat(s_idx), torch.cat(q_idx), classes


class Episodes(EpochCounter):
    """`episodes` batches of one episode each from in-memory tensors. Training: a new draw each epoch, from
    (seed, epoch). `query=(xq, yq)`: queries from there (validation), the same episodes every epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, ways: int, shots: int, queries: int, episodes: int,
                 seed: int = 0, query: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.x, self.y, self.ways, self.shots, self.queries = x, y, ways, shots, queries
        self.episodes, self.seed, self.query = max(1, episodes), seed, query
        self.support_of = by_class(y)
        self.query_of = by_class(query[1]) if query is not None else None
        self.epoch = 0

    def __len__(self) -> int:
        return self.episodes

    def __iter__(self):
        e = self.begin_epoch()
        g = torch.Generator().manual_seed(self.seed * 100_003 + (e if self.query is None else 0))
        ways = self.ways if self.query_of is None else min(self.ways, len(set(self.support_of) & set(self.query_of)))
        for _ in range(self.episodes):
            s, q, _classes = sample_episode(self.support_of, ways, self.shots, self.queries, g, self.query_of)
            xq, yq = (self.x, self.y) if self.query is None else self.query
            yield torch.cat([self.x[s], xq[q]]), torch.cat([self.y[s], yq[q]])

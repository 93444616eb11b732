"""Episodic training's parts (engine/episodes.py, engine/episodic.py, models/embedding.py): episodes of the right
shape that never reuse an item, the prototypical loss against a hand computation, the embedding the head sees, and
the one-line errors for data that cannot fill an episode."""
import math

import pytest
import torch
import torch.nn as nn

from seehear.engine.episodes import Episodes, check_episodes
from seehear.engine.episodic import prototypical_loss
from seehear.errors import ConfigError, DataError
from seehear.models.embedding import embed_and_logits, last_linear


def test_episodes_have_the_asked_shape_and_never_mix_support_and_query():
    y = torch.arange(6).repeat_interleave(12)  # 6 classes x 12
    x = torch.arange(len(y))  # each "input" is its own index, to trace where it came from
    ways, shots, queries = 4, 3, 5
    ep = Episodes(x, y, ways, shots, queries, episodes=20, seed=1)
    seen_first = []
    for epoch in range(2):
        for xb, yb in ep:
            assert len(xb) == ways * (shots + queries)
            s, q = xb[:ways * shots], xb[ways * shots:]
            assert (y[xb] == yb).all()  # the labels are the items' own
            assert not set(s.tolist()) & set(q.tolist()) and len(set(xb.tolist())) == len(xb)
            classes = yb[:ways * shots].unique()
            assert len(classes) == ways and set(yb[ways * shots:].tolist()) == set(classes.tolist())
            assert (yb[:ways * shots].view(ways, shots) == yb[:ways * shots:shots, None]).all()  # grouped by class
            assert (torch.bincount(yb[ways * shots:], minlength=6)[classes] == queries).all()
        seen_first.append(next(iter(ep))[0])
    assert not torch.equal(seen_first[0], seen_first[1])  # a new draw each epoch


def test_validation_episodes_take_queries_from_the_validation_split_and_repeat():
    y = torch.arange(3).repeat_interleave(10)
    yv = torch.tensor([0, 0, 1, 1, 2])
    xv = 1000 + torch.arange(len(yv))
    ep = Episodes(torch.arange(len(y)), y, 5, 2, 4, episodes=3, seed=0, query=(xv, yv))
    first, again = list(ep), list(ep)
    for (xb, yb), (xa, _) in zip(first, again):
        assert torch.equal(xb, xa)  # the same episodes every epoch: val_acc comparable across epochs
        n = 3 * 2  # ways capped at the 3 classes both splits have
        assert (xb[:n] < 1000).all() and (xb[n:] >= 1000).all() and len(xb) == n + len(yv)


def test_prototypical_loss_is_the_hand_computation():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    query = torch.tensor([[1.5, 0.0]])  # squared distances 2.25 and 0.25, over 2 dimensions; its class is the second
    loss, acc = prototypical_loss(support, torch.tensor([3, 7]), query, torch.tensor([7]))
    assert loss.item() == pytest.approx(0.125 + math.log(math.exp(-1.125) + math.exp(-0.125)), abs=1e-6)
    assert acc.item() == 1.0
    # prototypes are means: two shots at (0, 1) and (0, 3) make (0, 2); cosine scaled by 10
    loss, acc = prototypical_loss(torch.tensor([[0.0, 1.0], [0.0, 3.0], [1.0, 0.0], [3.0, 0.0]]),
                                  torch.tensor([0, 0, 1, 1]), torch.tensor([[1.0, 1.0]]), torch.tensor([0]),
                                  metric="cosine")
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)  # the query is 45 degrees from both: log 2


def test_the_embedding_is_what_the_last_linear_sees():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))
    f = torch.randn(4, 2, 4)
    head = last_linear(net, f)
    assert head is net[3]
    emb, logits = embed_and_logits(net, f, head)
    assert torch.allclose(emb, net[2](net[1](net[0](f)))) and torch.allclose(logits, net(f))
    emb.sum().backward()  # gradients flow: episodic training trains through it
    assert net[1].weight.grad is not None


def test_episodes_the_data_cannot_fill_are_one_line_errors():
    y = torch.tensor([0] * 10 + [1] * 10 + [2] * 4)
    with pytest.raises(DataError, match=r"class 'c' has 4 training examples, fewer examples than the shots asked for"):
        check_episodes(y, 3, 2, 3, ["a", "b", "c"])
    with pytest.raises(DataError, match="5-way episodes need 5 classes, but the training data has 3"):
        check_episodes(y, 5, 1, 1)
    with pytest.raises(ConfigError, match="at least 2 ways"):
        check_episodes(y, 2, 0, 1)
    check_episodes(y, 3, 1, 3)  # 4 examples are enough for 1 + 3

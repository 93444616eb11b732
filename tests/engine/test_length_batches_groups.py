"""Group-balanced sampling for transcription (engine/ctc.LengthBatches with sample weights): a 9:1 group skew is
drawn near 1:1, still in length buckets, as many batches every epoch, repeatable and resumable, sharded as before;
without weights the batches and their order are what they always were."""
from __future__ import annotations

import torch

from seehear.engine import loaders
from seehear.engine.ctc import LengthBatches
from seehear.engine.imbalance import sample_weights

from ctc_fakes import FakeWaves  # noqa: E402 (tests/engine, on sys.path under pytest)

N_A, N_B = 180, 20  # a 9:1 skew: rows 0..179 are group A, 180..199 group B
LENGTHS = [int(v) for v in torch.randint(1000, 9000, (N_A + N_B,), generator=torch.Generator().manual_seed(4))]
GROUPS = torch.tensor([0] * N_A + [1] * N_B)


def _loader(weighted=True, seed=0, sortagrad=False):
    w = sample_weights(torch.zeros_like(GROUPS), 1, "group_balanced", GROUPS) if weighted else None
    return LengthBatches(FakeWaves(LENGTHS), list(range(N_A + N_B)), [[1, 2]] * (N_A + N_B), 8, shuffle=True,
                         seed=seed, sortagrad=sortagrad, sample_weights=w)


def _epoch_rows(loader, epoch):
    return loader.epoch_batches(epoch)


def test_a_skewed_set_is_drawn_evenly_in_length_buckets():
    lb = _loader()
    drawn_b = total = 0
    for e in range(6):
        batches = _epoch_rows(lb, e)
        rows = [r for b in batches for r in b]
        assert len(rows) == N_A + N_B and len(batches) == len(lb) == len(lb.batches)  # steps per epoch fixed
        drawn_b += sum(r >= N_A for r in rows)
        total += len(rows)
        # length buckets: each batch's lengths lie in a range no other batch's lengths enter
        spans = sorted((min(LENGTHS[r] for r in b), max(LENGTHS[r] for r in b)) for b in batches)
        assert all(hi <= nxt_lo for (_, hi), (nxt_lo, _) in zip(spans, spans[1:]))
    assert 0.42 < drawn_b / total < 0.58, drawn_b / total  # 10% of the rows, about half of the draws
    assert len({tuple(r for b in _epoch_rows(lb, e) for r in b) for e in range(3)}) == 3  # a new draw each epoch


def test_draws_are_seeded_and_resume_at_the_trainers_epoch():
    lb = _loader(seed=2)
    epochs = [[int(b[1].max()) for b in lb] for _ in range(3)]  # epochs 0, 1, 2 as the loader counts them
    again = _loader(seed=2)
    again.follow(lambda: 2)  # a run resumed at epoch 2
    assert [int(b[1].max()) for b in again] == epochs[2] != epochs[0]
    assert _epoch_rows(_loader(seed=3), 0) != _epoch_rows(lb, 0)
    first = [max(LENGTHS[r] for r in b) for b in _epoch_rows(_loader(sortagrad=True), 0)]
    assert first == sorted(first)  # sortagrad: the first epoch still goes shortest batch first


def test_without_weights_batches_and_order_are_unchanged():
    """The default path as it always was: sorted rows cut at batch_size x median length padded samples, batch order
    a randperm from (seed, epoch); weights None or absent give the same."""
    lb, plain = _loader(weighted=False, seed=5), LengthBatches(
        FakeWaves(LENGTHS), list(range(N_A + N_B)), [[1, 2]] * (N_A + N_B), 8, shuffle=True, seed=5)
    rows = sorted(range(N_A + N_B), key=lambda r: LENGTHS[r])
    budget = 8 * int(torch.tensor(LENGTHS).median())
    expected, cur = [], []
    for r in rows:
        if cur and LENGTHS[r] * (len(cur) + 1) > budget:
            expected.append(cur)
            cur = []
        cur.append(r)
    expected.append(cur)
    assert lb.batches == plain.batches == expected
    for e in range(2):
        perm = torch.randperm(len(expected), generator=torch.Generator().manual_seed(5 * 100_003 + e)).tolist()
        assert lb.epoch_batches(e) == plain.epoch_batches(e) == [expected[i] for i in perm]


def test_weighted_epochs_shard_whole_batches(monkeypatch):
    whole = _epoch_rows(_loader(seed=1), 0)
    parts = []
    for r in range(2):
        monkeypatch.setattr(loaders, "world", lambda r=r: (r, 2))
        lb = _loader(seed=1)
        parts.append((len(lb), _epoch_rows(lb, 0)))
    (n0, b0), (n1, b1) = parts
    assert n0 == n1 == len(b0) == len(b1) == len(whole) // 2  # every rank as many steps
    idx = [[whole.index(b) for b in bs] for bs in (b0, b1)]  # every rank drew alike, then took its own batches
    assert not set(idx[0]) & set(idx[1])


def test_validation_batches_ignore_weights():
    w = sample_weights(torch.zeros_like(GROUPS), 1, "group_balanced", GROUPS)
    args = (FakeWaves(LENGTHS), list(range(N_A + N_B)), [[1]] * (N_A + N_B), 8)
    assert LengthBatches(*args, shuffle=False, sample_weights=w).epoch_batches(0) == \
        LengthBatches(*args, shuffle=False).epoch_batches(0)


def test_equal_weights_redraw_the_batches_every_epoch():
    """train.batches=redrawn passes equal weights (tasks/transcribe.draw_weights): both groups are drawn at their own
    share, and every epoch cuts new batches from a new draw."""
    w = torch.ones(N_A + N_B, dtype=torch.double)
    lb = LengthBatches(FakeWaves(LENGTHS), list(range(N_A + N_B)), [[1, 2]] * (N_A + N_B), 8, shuffle=True,
                       seed=0, sample_weights=w)
    epochs = [lb.epoch_batches(e) for e in range(3)]
    assert all(len(b) == len(lb.batches) for b in epochs)  # steps per epoch unchanged
    sets = [{tuple(sorted(b)) for b in bs} for bs in epochs]
    assert sets[0] != sets[1] != sets[2]  # the batches themselves differ, not only their order
    drawn_b = sum(r >= N_A for bs in epochs for b in bs for r in b) / sum(len(b) for bs in epochs for b in bs)
    assert 0.04 < drawn_b < 0.17, drawn_b  # group B drawn near its 10% share, not balanced

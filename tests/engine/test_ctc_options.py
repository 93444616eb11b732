"""CTC training options (all off by default): sortagrad's first epoch, loaders that follow the trainer's epoch on
resume, the warm-up fraction, the intermediate CTC loss, and the blank-plateau tracker."""
from __future__ import annotations

import math

import pytest
import torch

from seehear.config import RunConfig
from seehear.engine.base_module import TrainModule
from seehear.engine.ctc import CTCModule, LengthBatches
from seehear.engine.loaders import Batches
from seehear.engine.plateau import PlateauTracker, emitted_units
from seehear.errors import ConfigError

from ctc_fakes import FakeWaves  # noqa: E402 (tests/engine, on sys.path under pytest)



def _batches(sortagrad, seed=0):
    lengths = [int(v) for v in torch.randint(1000, 9000, (40,), generator=torch.Generator().manual_seed(1))]
    waves = FakeWaves(lengths)
    targets = [[1, 2]] * 40
    return LengthBatches(waves, list(range(40)), targets, 2, shuffle=True, seed=seed, sortagrad=sortagrad), waves


def _epoch_lengths(loader):
    return [int(b[1].max()) for b in loader]


def test_sortagrad_first_epoch_shortest_first_then_shuffled():
    sorted_loader, _ = _batches(True)
    plain, _ = _batches(False)
    first = _epoch_lengths(sorted_loader)
    assert first == sorted(first) and len(set(first)) > 5  # shortest batch first
    assert _epoch_lengths(plain) != sorted(_epoch_lengths(_batches(False)[0]))  # without it: shuffled
    second = _epoch_lengths(sorted_loader)
    plain.epoch = 1
    assert second == _epoch_lengths(plain) and second != sorted(second)  # afterwards: the usual shuffle


def test_loaders_follow_the_trainers_epoch():
    loader, _ = _batches(False)
    expected = [_epoch_lengths(loader) for _ in range(3)]  # epochs 0, 1, 2 counted by the loader itself
    resumed, _ = _batches(False)
    resumed.follow(lambda: 2)  # a run resumed at epoch 2
    assert _epoch_lengths(resumed) == expected[2] != expected[0]
    x, y = torch.zeros(30, 1), torch.arange(30)
    own = Batches(x, y, 10, shuffle=True, seed=3)
    orders = [torch.cat([b[1] for b in own]).tolist() for _ in range(2)]
    again = Batches(x, y, 10, shuffle=True, seed=3)
    again.follow(lambda: 1)
    assert torch.cat([b[1] for b in again]).tolist() == orders[1] != orders[0]


class _Tiny(TrainModule):
    """A linear model that records the order of the examples it is shown, per epoch."""

    def __init__(self, cfg, steps):
        super().__init__(torch.nn.Linear(1, 2), cfg, steps)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, _):
        self.start_step()
        x, y = batch
        self.seen.setdefault(self.current_epoch, []).extend(y.tolist())
        return torch.nn.functional.cross_entropy(self.model(x.float()), y % 2)


def test_resumed_run_does_not_repeat_epoch_zeros_shuffle(tmp_path):
    from seehear.engine.trainer import fit_module

    x, y = torch.randn(24, 1), torch.arange(24)

    def run(out, epochs, resume=False):
        cfg = RunConfig.from_dict({"train": {"epochs": epochs, "threads": 1, "precision": "32", "lr": 1e-3,
                                             "optimizer": "sgd"}})
        loader = Batches(x, y, 8, shuffle=True, seed=5)
        m = _Tiny(cfg, len(loader))
        fit_module(m, cfg, loader, None, out, resume=resume, progress=False)
        return m.seen

    whole = run(tmp_path / "whole", 3)
    run(tmp_path / "cut", 2)
    resumed = run(tmp_path / "cut", 3, resume=True)
    assert list(resumed) == [2]  # only the missing epoch ran
    assert resumed[2] == whole[2] != whole[0]


@pytest.mark.parametrize("schedule,fraction,points", [
    ("onecycle", None, [(0.125, 0.5), (0.25, 1.0), (0.625, 0.5)]),  # the schedule's own 25%
    ("onecycle", 0.1, [(0.05, 0.5), (0.1, 1.0), (0.55, 0.5)]),
    ("linear", 0.2, [(0.1, 0.5), (0.2, 1.0), (0.6, 0.5)]),
    ("cosine", 0.2, [(0.1, 0.5), (0.2, 1.0), (0.6, 0.5)]),
    ("constant", 0.4, [(0.2, 0.5), (0.4, 1.0), (0.9, 1.0)]),
])
def test_warmup_fraction(schedule, fraction, points):
    cfg = RunConfig.from_dict({"train": {"schedule": schedule, "warmup_fraction": fraction, "epochs": 10}})
    m = TrainModule(torch.nn.Linear(1, 1), cfg, 10)
    for p, want in points:
        m.progress = lambda p=p: p
        assert math.isclose(m.lr_factor(0), want, abs_tol=1e-6), (schedule, fraction, p)


def test_warmup_fraction_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="warmup_fraction"):
        TrainModule(torch.nn.Linear(1, 1), RunConfig.from_dict({"train": {"warmup_fraction": 1.5}}), 10)


def _transcriber(name, inter=0.0, **kw):
    from seehear.models.transcriber import build_transcriber

    cfg = RunConfig.from_dict({"task": "transcribe", "model": {"name": name, **kw},
                               "audio": {"n_mels": 40}, "train": {"inter_ctc_weight": inter}})
    return build_transcriber(cfg, ["<blank>", "|", "a", "b", "c"]), cfg


def _batch():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 8000, generator=g) * 3000).short()
    return x, torch.tensor([8000, 6000]), torch.tensor([2, 3, 4, 2, 3]), torch.tensor([3, 2])


@pytest.mark.parametrize("inter", [0.0, 0.3])
def test_intermediate_ctc_loss_present_or_absent(inter):
    from seehear.data.decode import pcm_to_float

    torch.manual_seed(0)
    net, cfg = _transcriber("conformer_ctc_tiny", inter)
    net.eval()  # no dropout or SpecAugment: the two losses can be recomputed exactly
    m = CTCModule(net, cfg, 1)
    m._augment_batch = lambda x, lens: (pcm_to_float(x), lens)
    x, lens, targets, tl = _batch()
    with torch.no_grad():
        loss, lp, n = m._ctc((x, lens, targets, tl), train=True)
        final, n2, middle = net.forward_inter(pcm_to_float(x), lens)
    ctc = lambda p: torch.nn.functional.ctc_loss(p.transpose(0, 1), targets, n2, tl, zero_infinity=True)  # noqa
    assert torch.allclose(loss, (1 - inter) * ctc(final) + inter * ctc(middle), atol=1e-5)
    if inter:
        assert not torch.allclose(ctc(final), ctc(middle))  # the middle block's loss is really in it


def test_intermediate_ctc_needs_a_model_with_blocks():
    with pytest.raises(ConfigError, match="inter_ctc_weight needs"):
        _transcriber("bilstm_ctc", 0.3)
    with pytest.raises(ConfigError, match="inter_ctc_weight must be"):
        _transcriber("conformer_ctc_tiny", 1.0)


def test_model_settings_reach_the_transcriber():
    net, _ = _transcriber("conformer_ctc_tiny", subsample=8, blank_bias=3.0)
    assert net.acoustic.frame_factor == 8 and math.isclose(net.frame_seconds, 0.08)
    assert float(net.acoustic.head.bias[0].detach()) == 3.0
    plain, _ = _transcriber("conformer_ctc_tiny")
    assert plain.acoustic.frame_factor == 4 and float(plain.acoustic.head.bias[0].detach()) != 3.0
    with pytest.raises(ConfigError, match="disagree"):
        _transcriber("conformer_ctc_tiny", subsample=8, kwargs={"subsample": 2})


def _scores(paths):
    """log-probs [B, T, 4] whose best path is each given list of unit ids."""
    lp = torch.full((len(paths), max(map(len, paths)), 4), -5.0)
    for b, p in enumerate(paths):
        for t, u in enumerate(p):
            lp[b, t, u] = 0.0
    return lp


def test_emitted_units_merge_repeats_drop_blanks_and_padding():
    lp = _scores([[0, 1, 1, 0, 1, 2, 2, 3], [2, 2, 0, 3, 1, 1, 1, 1]])
    assert emitted_units(lp, torch.tensor([8, 4])) == 4 + 2  # 1 1 2 3 | 2 3 (the rest is padding)


def test_plateau_tracker_finds_the_end_of_the_blank_phase():
    t = PlateauTracker(every=1)
    noisy = _scores([[1, 2, 3, 1, 2, 3]])  # random start: emits too much
    blank = _scores([[0] * 6])
    some = _scores([[0, 1, 0, 0, 2, 0]])  # 2 of the 3 target units
    n, steps = torch.tensor([6]), [noisy, noisy, blank, blank, blank, some, blank]
    for step, lp in enumerate(steps):
        t.update(step, 0.5 * step, lp, n, target_units=3)
    r = t.record()
    assert (r["plateau_start_step"], r["plateau_end_step"], r["plateau_steps"]) == (2, 5, 3)
    assert r["plateau_end_seconds"] == 2.5 and len(r["curve"]) == 7
    assert r["curve"][5][2] == pytest.approx(2 / 3, abs=1e-3)
    fresh = PlateauTracker()
    fresh.load_state_dict(t.state_dict())
    assert fresh.record() == r  # resumed with the run
    never = PlateauTracker()
    never.update(0, 0.0, blank, n, 3)
    assert never.record()["plateau_end_step"] is None and never.record()["plateau_start_step"] == 0


def test_work_off_the_clock_is_not_training_time():
    import time

    m = TrainModule(torch.nn.Linear(1, 1), RunConfig(), 10)
    m.start_step()
    with m.off_clock():
        time.sleep(0.3)  # a benchmark's evaluation between steps
    m.on_train_batch_end()
    assert m.train_seconds < 0.1
    m.start_step()
    time.sleep(0.2)
    m.on_train_batch_end()
    assert m.train_seconds >= 0.2  # the clock still runs outside it


def test_vtlp_warps_transcriber_features_in_training_only():
    from seehear.data.decode import pcm_to_float
    from seehear.models.transcriber import build_transcriber

    tokens = ["<blank>", "|", "a", "b", "c"]
    base = {"task": "transcribe", "model": {"name": "conformer_ctc_tiny"}, "audio": {"n_mels": 40},
            "augment": {"freq_masks": 0, "time_masks": 0}}
    plain = build_transcriber(RunConfig.from_dict(base), tokens)
    warped = build_transcriber(RunConfig.from_dict({**base, "augment": {**base["augment"], "vtlp": [0.8, 0.85]}}),
                               tokens)
    assert plain.vtlp is None and warped.vtlp is not None
    assert set(warped.state_dict()) == set(plain.state_dict())  # no weights: runs load with or without it
    x, lens, _, _ = _batch()
    w = pcm_to_float(x)
    plain.eval(), warped.eval()
    assert torch.allclose(plain.features(w, lens)[0], warped.features(w, lens)[0])  # inference is never warped
    plain.train(), warped.train()
    a, frames = plain.features(w, lens)
    b, _ = warped.features(w, lens)
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.all(b[1, ..., int(frames[1]):] == 0)  # padding stays out of the warped, normalised features
    with pytest.raises(ConfigError):
        build_transcriber(RunConfig.from_dict({**base, "augment": {"vtlp": [1.2, 0.9]}}), tokens)

"""The training loop's parts that the fast image recipe switches on: alternating flips in the loader, lookahead
averaging, the data-wait share, flip test-time augmentation."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from seehear.engine.lookahead import Lookahead
from seehear.engine.loaders import Batches


def test_alternating_flip_shows_every_image_both_ways_every_two_epochs():
    n = 40
    x = torch.randint(0, 256, (n, 3, 4, 5), dtype=torch.uint8)
    x[:, :, :, 0] = torch.arange(n, dtype=torch.uint8)[:, None, None]  # left column: the image's id
    x[:, :, :, -1] = 255  # right column: marks the unflipped side
    y = torch.arange(n)
    loader = Batches(x, y, batch_size=8, shuffle=True, seed=3, alternate_flip=True)
    seen = []
    for _ in range(4):
        flipped = {}
        for xb, yb in loader:
            for img, label in zip(xb, yb):
                is_flipped = bool(img[0, 0, 0] == 255)
                assert torch.equal(img.flip(-1) if is_flipped else img, x[label]), "only mirrored, never changed"
                flipped[int(label)] = is_flipped
        assert len(flipped) == n
        seen.append(flipped)
    for a, b in zip(seen, seen[1:]):
        assert all(a[i] != b[i] for i in range(n)), "each image changes side every epoch"
    assert 0 < sum(seen[0].values()) < n, "the starting side is random per image"
    plain = Batches(x, y, batch_size=8, shuffle=True, seed=3)
    assert all(torch.equal(xb, x[yb]) for xb, yb in plain), "off by default"


class _Module(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        self.p = 0.5

    def progress(self):
        return self.p


def _params(m):
    return [v.clone() for v in m.model.state_dict().values() if v.is_floating_point()]


def test_lookahead_pulls_toward_the_slow_weights_and_ends_on_them():
    m, cb = _Module(), Lookahead(every=5, decay=0.8)
    cb.on_train_start(None, m)
    start = _params(m)
    with torch.no_grad():
        for p in m.model.parameters():
            p.add_(1.0)
    fast = _params(m)
    cb.on_train_batch_end(SimpleNamespace(global_step=3), m, None, None, 0)
    assert all(torch.equal(a, b) for a, b in zip(_params(m), fast)), "only every 5th step"
    cb.on_train_batch_end(SimpleNamespace(global_step=5), m, None, None, 0)
    d = 0.8 * 0.5 ** 3
    for got, s, f in zip(_params(m), start, fast):
        assert torch.allclose(got, d * s + (1 - d) * f)
    slow = _params(m)
    with torch.no_grad():
        for p in m.model.parameters():
            p.add_(5.0)
    cb.on_train_end(None, m)
    assert all(torch.equal(a, b) for a, b in zip(_params(m), slow)), "training ends on the slow weights"
    # the slow copy travels in checkpoints
    cb2 = Lookahead(every=5, decay=0.8)
    cb2.load_state_dict(cb.state_dict())
    m2 = _Module()
    cb2.on_train_start(None, m2)
    assert all(torch.equal(a, b) for a, b in zip(cb2.slow, slow))


@pytest.mark.slow
def test_fast_image_recipe_trains_with_its_parts_on(shapes_dir, tmp_path, monkeypatch):
    import seehear

    flush_calls, real_flush = [], torch.set_flush_denormal
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: flush_calls.append(on) or real_flush(on))
    r = seehear.train(shapes_dir, tmp_path / "run", overrides=["train.epochs=4", "train.threads=1",
                                                               "data.workers=1", "train.batch_size=16"],
                      progress=False)
    cfg = r.meta["config"]
    assert r.meta["model"]["name"] == "fastnet"
    assert cfg["augment"]["alternate_flip"] and cfg["train"]["lookahead"] and cfg["image"]["tta"] == "flip"
    share = r.meta["train"]["data_wait_share"]
    assert 0.0 < share < 1.0
    assert flush_calls == [True, False], "denormals are flushed while training on CPU, and only then"
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0, "the caller's process is left as it was"
    model = seehear.load_run(r.run_dir).model
    assert model.tta == "flip"
    w = model.backbone.stem[0].weight
    assert torch.equal(w[12:], -w[:12]), "the whitening layer (filters and their negatives) was not trained"
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.flip(-1)), atol=1e-5), "flip TTA: mirror images agree"
        model.tta = "none"
        assert not torch.allclose(model(x), model(x.flip(-1)), atol=1e-5)
    assert r.accuracy > 0.6


def test_prefetch_transforms_in_order_repeatably_and_stops_cleanly():
    import threading

    from seehear.engine.loaders import Prefetch

    x = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 3)
    y = torch.arange(40)
    loader = Batches(x, y, batch_size=8, shuffle=True, seed=1)

    def noisy(xb, g):
        return xb + torch.rand(xb.shape, generator=g)

    a = [(xb.clone(), yb) for xb, yb in Prefetch(loader, noisy, seed=5)]
    loader.epoch = 0
    b = [(xb.clone(), yb) for xb, yb in Prefetch(loader, noisy, seed=5)]
    assert len(a) == 5 == len(Prefetch(loader, noisy))
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb) and torch.equal(xa, xb), "same seed, same batches, same augmentation"
        assert ((xa - ya[:, None].float()) >= 0).all() and ((xa - ya[:, None].float()) < 1).all()
    before = threading.active_count()
    it = iter(Prefetch(loader, noisy))
    next(it)
    it.close()  # training stopped mid-epoch (time budget): the worker thread ends
    assert threading.active_count() <= before

    def broken(xb, g):
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(Prefetch(loader, broken))


@pytest.mark.parametrize("schedule,want", [("linear", [1.0, 0.75, 0.0]), ("onecycle", [0.0, 1.0, 0.0])])
def test_lr_schedules_by_progress(schedule, want):
    from seehear.config import RunConfig
    from seehear.engine.classify import ClassifyModule
    from seehear.models.recognizer import build_recognizer

    cfg = RunConfig()
    cfg.model.name, cfg.train.schedule = "fastnet", schedule
    module = ClassifyModule(build_recognizer(cfg, ["a", "b"], "image"), cfg, steps_per_epoch=4)
    got = []
    for p in (0.0, 0.25, 1.0):
        module.progress = lambda p=p: p
        got.append(module.lr_factor(0))
    assert got == pytest.approx(want, abs=1e-3)



def test_predicting_leaves_an_image_model_loadable():
    """predict_probs runs under inference mode and moves the model to channels_last: the move must not turn its 4-D
    buffers (the input normalisation) into inference tensors, which load_state_dict can no longer copy into (the
    federated server evaluates, then loads the next round's weights into the same model)."""
    from seehear.config import RunConfig
    from seehear.engine.trainer import predict_probs
    from seehear.models.recognizer import build_recognizer

    cfg = RunConfig()
    cfg.model.name = "small_cnn"
    model = build_recognizer(cfg, ["a", "b"], "image", {"mean": [0.4] * 3, "std": [0.2] * 3})
    predict_probs(model, torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), precision="32")
    state = {k: v.clone() + (1 if k.endswith("mean") else 0) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert torch.allclose(model.frontend.mean.flatten(), torch.full((3,), 1.4))

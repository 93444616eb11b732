"""Group-balanced sampling (train.sampler=group_balanced, train.group_by=COLUMN): the drawing weights make every
group as frequent in the batches as every other, also through a real training run on a manifest whose groups are
very unequal; a column the data lacks is a one-line error."""
from __future__ import annotations

import csv

import pytest
import torch

import seehear
from seehear.cli import main
from seehear.engine.imbalance import sample_weights
from seehear.engine.loaders import Batches
from seehear.errors import ConfigError, DataError

GROUPS = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)  # a 90:1 group ratio
Y = torch.arange(1000) % 2  # both classes in every group


def _batches(w, bs=300, epochs=4):
    loader = Batches(torch.arange(len(Y))[:, None], Y, bs, shuffle=True, seed=0, sample_weights=w, drop_last=True)
    return [x[:, 0] for _ in range(epochs) for x, _ in loader]


def test_group_balanced_batches_draw_each_group_alike():
    batches = _batches(sample_weights(Y, 2, "group_balanced", GROUPS))
    assert len(batches) == 12
    for idx in batches:  # every batch, not only on average: binomial sd at p=1/3, n=300 is 0.027
        share = torch.bincount(GROUPS[idx], minlength=3).float() / len(idx)
        assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.12), share
    every = torch.cat(batches)
    share = torch.bincount(GROUPS[every], minlength=3).float() / len(every)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03)
    plain = torch.cat(_batches(None))  # without it the smallest group is 1% of what is drawn
    assert (GROUPS[plain] == 2).float().mean() < 0.03


def test_group_class_balanced_evens_out_classes_within_groups_too():
    y = torch.cat([torch.zeros(800, dtype=torch.long), torch.ones(100, dtype=torch.long),  # group 0: 8:1
                   torch.zeros(10, dtype=torch.long), torch.ones(90, dtype=torch.long)])   # group 1: 1:9
    groups = torch.tensor([0] * 900 + [1] * 100)
    w = sample_weights(y, 2, "group_class_balanced", groups)
    drawn = torch.multinomial(w, 40_000, replacement=True, generator=torch.Generator().manual_seed(0))
    cells = torch.bincount(groups[drawn] * 2 + y[drawn], minlength=4).float() / len(drawn)
    assert torch.allclose(cells, torch.full((4,), 0.25), atol=0.02)
    only_groups = sample_weights(y, 2, "group_balanced", groups)  # groups even, classes as the group has them
    drawn = torch.multinomial(only_groups, 40_000, replacement=True, generator=torch.Generator().manual_seed(0))
    assert float((y[drawn][groups[drawn] == 0] == 0).float().mean()) == pytest.approx(8 / 9, abs=0.02)


def test_group_samplers_need_groups():
    with pytest.raises(ValueError, match="group index"):
        sample_weights(Y, 2, "group_balanced", None)


@pytest.fixture(scope="module")
def skewed_manifest(tmp_path_factory):
    """Tones of 2 classes; column site: 'big' holds 44 files, 'small' 4 (both classes in each)."""
    from seehear.data.synth import make_tones

    root = tmp_path_factory.mktemp("groups")
    tones = make_tones(root / "tones", classes=2, per_class=24, sample_rate=8000, seconds=0.5)
    rows = []
    for label_dir in sorted(tones.iterdir()):
        for j, f in enumerate(sorted(label_dir.glob("*.wav"))):
            rows.append({"path": str(f), "label": label_dir.name, "site": "small" if j < 2 else "big",
                         "split": "test" if j in (2, 3) else "train"})
    man = root / "skewed.csv"
    with open(man, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return man


BASE = ["train.threads=1", "data.workers=1", "model.name=bcresnet1", "train.epochs=1", "data.split_column=split",
        "data.valid_fraction=0", "audio.sample_rate=8000", "audio.clip_seconds=0.5", "train.batch_size=8"]


@pytest.mark.slow
def test_training_draws_the_manifest_groups_evenly(skewed_manifest, tmp_path, monkeypatch):
    import seehear.engine.trainer as trainer

    made = []

    class Spy(Batches):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

    monkeypatch.setattr(trainer, "Batches", Spy)
    got = {}
    real_fit = trainer.fit

    def fit_spy(*a, groups=None, **kw):
        got["groups"] = groups
        return real_fit(*a, groups=groups, **kw)

    import seehear.tasks.classify as classify

    monkeypatch.setattr(classify, "fit", fit_spy)
    r = seehear.train(skewed_manifest, tmp_path / "run", progress=False,
                      overrides=[*BASE, "train.sampler=group_balanced", "train.group_by=site"])
    per = r.meta["data"]["train_per_group"]
    assert per == {"column": "site", "counts": {"big": 40, "small": 4}}
    groups = got["groups"]
    assert torch.bincount(groups).tolist() == [40, 4]  # big = 0, small = 1 (sorted names)
    w = made[0].weights  # the training loader's drawing weights: 1 / the example's group count
    assert torch.allclose(w[groups == 1], torch.tensor(1 / 4)) and torch.allclose(w[groups == 0], torch.tensor(1 / 40))
    drawn = torch.multinomial(w, 20_000, replacement=True, generator=torch.Generator().manual_seed(0))
    assert float((groups[drawn] == 1).float().mean()) == pytest.approx(0.5, abs=0.02)  # 4 of 44 files, half the draws


@pytest.mark.slow
def test_unknown_group_column_is_one_line(skewed_manifest, tmp_path, capsys):
    with pytest.raises(DataError, match=r"train.group_by 'nosuch': no example has that column; columns here: .*site"):
        seehear.train(skewed_manifest, tmp_path / "r", progress=False,
                      overrides=[*BASE, "train.sampler=group_balanced", "train.group_by=nosuch"])
    assert not (tmp_path / "r" / "model.safetensors").exists()
    code = main(["train", str(skewed_manifest), "--out", str(tmp_path / "r2"), "--set", "train.sampler=group_balanced",
                 "--set", "train.group_by=nosuch", *[x for b in BASE for x in ("--set", b)]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("seehear: error: ") and "\n" not in err and "nosuch" in err


@pytest.mark.slow
def test_group_by_without_a_group_sampler_is_refused(skewed_manifest, tmp_path):
    with pytest.raises(ConfigError, match="only used by train.sampler=group_balanced"):
        seehear.train(skewed_manifest, tmp_path / "r", progress=False, overrides=[*BASE, "train.group_by=site"])

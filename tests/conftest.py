"""Shared fixtures: tiny generated data sets (never ../shared/data), made once per test session."""
from __future__ import annotations

import os

import pytest
import torch

# Two pytest workers share two cores: one torch thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def seehear_home(tmp_path_factory):
    """A private $SEEHEAR_HOME: a default start in the real ~/.seehear must not change what the tests train."""
    old = os.environ.get("SEEHEAR_HOME")
    os.environ["SEEHEAR_HOME"] = str(tmp_path_factory.mktemp("seehear-home"))
    yield os.environ["SEEHEAR_HOME"]
    if old is None:
        os.environ.pop("SEEHEAR_HOME", None)
    else:
        os.environ["SEEHEAR_HOME"] = old


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    return make_shape_images(tmp_path_factory.mktemp("shapes") / "shapes", classes=3, per_class=60, size=32)


@pytest.fixture(scope="session")
def tones_dir(tmp_path_factory):
    from seehear.data.synth import make_tones

    return make_tones(tmp_path_factory.mktemp("tones") / "tones", classes=3, per_class=30, seconds=0.5)


@pytest.fixture
def fast(request):
    """Settings that make a real training run take seconds."""
    return ["train.epochs=3", "train.threads=1", "train.batch_size=16", "data.workers=1"]

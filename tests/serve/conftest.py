"""Small trained runs to serve (an image classifier trained in seconds; a streaming transcriber on espeak-ng
sentences) and servers over them; the server helpers are in servers.py."""
from __future__ import annotations

import pytest

from servers import serving


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    """A shapes classifier (circle / square / triangle), trained for two epochs: a few seconds."""
    import seehear
    from seehear.data.synth import make_shape_images

    root = tmp_path_factory.mktemp("serve")
    data = make_shape_images(root / "shapes", classes=3, per_class=40, size=32)
    out = root / "shapes32"
    seehear.train(str(data), str(out), overrides=["train.epochs=2", "train.threads=1", "train.batch_size=16",
                                                  "data.workers=1"], progress=False)
    return out, data


@pytest.fixture(scope="session")
def stream_run(tmp_path_factory):
    """A streaming transcriber (lstm_ctc_stream, one small layer) on espeak-ng digit sentences: ~15 s, enough
    epochs that it says words (after two it says nothing, which would make text comparisons empty)."""
    import seehear
    from seehear.data.synth import make_spoken_sentences

    root = tmp_path_factory.mktemp("serve-asr")
    data = make_spoken_sentences(root / "sent", train=60, test=12, workers=1)
    out = root / "asr"
    seehear.train(str(data), str(out), overrides=["task=transcribe", "model.name=lstm_ctc_stream",
                                                  "model.kwargs={hidden: 96, layers: 1}", "train.epochs=50",
                                                  "train.lr=5e-3", "train.threads=1", "data.workers=1",
                                                  "transcribe.decoder=greedy"],
                  progress=False)
    return out, data


@pytest.fixture(scope="session")
def both_server(image_run, stream_run):
    """One server with the image run and the streaming run (the stream tests and the page share it)."""
    with serving([image_run[0], stream_run[0]]) as s:
        yield s

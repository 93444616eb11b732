"""The audio-image recognizer: every fusion mode's output shape with both inputs, either alone, or a per-example
present mask; an absent input has no influence (it is marked absent, not read as zeros that pretend to be data)."""
import pytest
import torch

from seehear.config import RunConfig
from seehear.errors import ConfigError, DataError
from seehear.models.fusion import MODES, FusionRecognizer
from seehear.models.recognizer import build_recognizer

LABELS = ["a", "b", "c", "d", "e"]


def _model(mode, **fusion):
    cfg = RunConfig(modality="audio-image")
    cfg.image.size, cfg.audio.clip_seconds = 16, 0.25
    cfg.fusion.mode = mode
    for k, v in fusion.items():
        setattr(cfg.fusion, k, v)
    torch.manual_seed(0)
    return build_recognizer(cfg, LABELS, "audio-image").eval()


def _inputs(b=4):
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (b, 3, 16, 16), dtype=torch.uint8, generator=g), torch.randn(b, 4000, generator=g) * .1


@pytest.mark.parametrize("mode", MODES)
def test_shapes_of_every_mode(mode):
    m = _model(mode)
    img, aud = _inputs()
    assert isinstance(m, FusionRecognizer) and m.mode == mode
    for out in (m(img, aud), m(img), m(audio=aud), m(img, aud, torch.tensor([[1, 0], [0, 1], [1, 1], [1, 0]]))):
        assert out.shape == (4, len(LABELS)) and torch.isfinite(out).all()


@pytest.mark.parametrize("mode", MODES)
def test_absent_input_has_no_influence(mode):
    m = _model(mode)
    img, aud = _inputs()
    other = torch.randint(0, 256, img.shape, dtype=torch.uint8)
    with torch.no_grad():
        alone = m(audio=aud)
        masked = m(other, aud, torch.tensor([[0, 1]] * 4))  # an image given but marked absent: ignored
        both = m(img, aud)
    torch.testing.assert_close(alone, masked)
    assert not torch.allclose(alone, both), "the image, when present, changes the prediction"
    # per example: rows with the image absent match the audio-only output, the others do not
    mixed = m(img, aud, torch.tensor([[0, 1], [1, 1], [0, 1], [1, 1]]))
    torch.testing.assert_close(mixed[[0, 2]], alone[[0, 2]])
    torch.testing.assert_close(mixed[[1, 3]], both[[1, 3]])


def test_both_absent_is_refused():
    with pytest.raises(DataError, match="image, a recording, or both"):
        _model("early")(None, None)


def test_gradients_reach_both_branches():
    m = _model("attention").train()
    img, aud = _inputs()
    m(img, aud).logsumexp(1).sum().backward()
    for branch in (m.image, m.audio):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.backbone.parameters())


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="fusion.mode"):
        RunConfig.from_dict({"fusion": {"mode": "sum"}})
    with pytest.raises(ConfigError, match="fusion.audio_model=small_cnn"):
        _model("early", audio_model="small_cnn")
    m = _model("late", image_model="resnet8", audio_model="bcresnet1")
    assert m(*_inputs()).shape == (4, 5)

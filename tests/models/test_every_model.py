"""Every registered backbone: forward, backward, shapes, and a safetensors round trip, on tiny CPU inputs."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from seehear.errors import ConfigError
from seehear.models import create_model, get_spec, list_models

NUM_CLASSES = 5
IMAGE_SIZE = (32, 32)
AUDIO_SIZE = (40, 101)
FRAMES = 8

ALL = [s.name for s in list_models(task="classify")]  # transcription models: test_asr_models.py


def _check_grads(model):
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def _forward_backward(model, x):
    model.train()
    y = model(x)
    assert y.shape == (x.shape[0], NUM_CLASSES)
    assert torch.isfinite(y).all()
    (y.float().logsumexp(-1).mean() - y[:, 0].mean()).backward()  # a cross-entropy-like loss
    _check_grads(model)


def _roundtrip(name, model, x, tmp_path, size=None, **create_kwargs):
    model.eval()
    with torch.no_grad():
        ref = model(x)
    path = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(path))
    channels = x.shape[2] if x.dim() == 5 else x.shape[1]
    fresh = create_model(name, NUM_CLASSES, channels, size or tuple(x.shape[-2:]), **create_kwargs)
    fresh.load_state_dict(load_file(str(path)))
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), ref)


def test_registry_has_every_family():
    names = set(ALL)
    for n in ["small_cnn", "resnet8", "resnet20", "fastnet", "timm/resnet18", "timm/mobilenetv3_small_100",
              "timm/mobilenetv3_large_100", "timm/efficientnet_b0", "timm/vit_tiny_patch16_224", "bcresnet1",
              "bcresnet3", "bcresnet8", "tcresnet8", "tcresnet14", "cnn_lstm", "lstm", "kwt_tiny", "conformer_tiny",
              "cnn_lstm_frames", "frames_transformer", "frames_mean"]:
        assert n in names
    for s in list_models("audio"):
        if s.name.startswith(("lstm", "cnn_lstm", "kwt", "conformer")):
            assert s.sequence, s.name
    assert all(s.description for s in list_models())


@pytest.mark.parametrize("name", ALL)
def test_model_forward_backward_roundtrip(name, tmp_path):
    torch.manual_seed(0)
    spec = get_spec(name)
    if spec.modality == "frames":  # image sequences [B, T, C, H, W]; input_size is (T, H, W)
        for ch in (1, 3):
            model = create_model(name, NUM_CLASSES, ch, (FRAMES, 16, 16))
            x = torch.randn(2, FRAMES, ch, 16, 16)
            _forward_backward(model, x)
        _roundtrip(name, model, x, tmp_path, size=(FRAMES, 16, 16))
        # another frame count and image size than built for still work (positions stretched over time)
        _forward_backward(create_model(name, NUM_CLASSES, 1, (FRAMES, 16, 16)), torch.randn(2, 3, 1, 24, 24))
    elif spec.modality == "image":
        for ch in (1, 3):
            model = create_model(name, NUM_CLASSES, ch, IMAGE_SIZE)
            x = torch.randn(2, ch, *IMAGE_SIZE)
            _forward_backward(model, x)
        _roundtrip(name, model, x, tmp_path)
    else:
        model = create_model(name, NUM_CLASSES, 1, AUDIO_SIZE)
        x = torch.randn(2, 1, *AUDIO_SIZE)
        _forward_backward(model, x)
        if spec.sequence:
            model.eval()
            with torch.no_grad():
                h = model.encode(x)
            assert h.dim() == 3 and h.shape[0] == 2 and h.shape[2] == model.embed_dim
            assert 1 <= h.shape[1] <= AUDIO_SIZE[1] + 1
        _roundtrip(name, model, x, tmp_path)
        # tiny features and a second input channel must work too
        small = create_model(name, NUM_CLASSES, 2, (16, 24))
        _forward_backward(small, torch.randn(2, 2, 16, 24))


@pytest.mark.parametrize("name", ["small_cnn", "resnet8", "fastnet"])
def test_small_images(name):
    model = create_model(name, NUM_CLASSES, 1, (8, 8))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, NUM_CLASSES)


def test_dropout_kwarg_and_bad_kwargs():
    create_model("bcresnet1", 3, 1, AUDIO_SIZE, dropout=0.2)
    create_model("kwt_tiny", 3, 1, AUDIO_SIZE, pool="cls", patch_time=2)(torch.randn(2, 1, 40, 101))
    with pytest.raises(ConfigError):
        create_model("small_cnn", 3, 1, IMAGE_SIZE, no_such_option=1)
    with pytest.raises(ConfigError):
        create_model("no_such_model", 3, 1, IMAGE_SIZE)


def test_timm_pretrained_transfer(tmp_path):
    torch.manual_seed(0)
    src = create_model("timm/resnet18", 10, 3, IMAGE_SIZE)
    path = tmp_path / "resnet18.safetensors"
    save_file(src.state_dict(), str(path))
    model = create_model("timm/resnet18", 4, 1, IMAGE_SIZE, pretrained=str(path))
    s_src, s_new = src.state_dict(), model.state_dict()
    for k, v in s_new.items():
        if k.startswith("fc."):
            assert v.shape[0] == 4  # fresh head for the new classes
        elif k == "conv1.weight":
            assert torch.allclose(v, s_src[k].sum(dim=1, keepdim=True))  # RGB filters summed for grayscale
        else:
            assert torch.equal(v, s_src[k]), k
    assert model(torch.randn(2, 1, *IMAGE_SIZE)).shape == (2, 4)

    # a torch checkpoint with a wrapper dict and DataParallel prefixes works too
    pth = tmp_path / "w.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, pth)
    model2 = create_model("timm/resnet18", 4, 3, IMAGE_SIZE, pretrained=str(pth))
    assert torch.equal(model2.state_dict()["layer4.1.conv2.weight"], s_src["layer4.1.conv2.weight"])


def test_timm_pretrained_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        create_model("timm/resnet18", 4, 1, IMAGE_SIZE, pretrained=str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read"):
        create_model("timm/resnet18", 4, 1, IMAGE_SIZE, pretrained=str(bad))
    other = tmp_path / "other.safetensors"
    save_file(create_model("timm/mobilenetv3_small_100", 4, 3, IMAGE_SIZE).state_dict(), str(other))
    with pytest.raises(ConfigError, match="do not fit"):
        create_model("timm/resnet18", 4, 3, IMAGE_SIZE, pretrained=str(other))


@pytest.mark.parametrize("name", ["bcresnet1", "small_cnn"])
def test_own_models_take_pretrained(name, tmp_path):
    torch.manual_seed(0)
    size = AUDIO_SIZE if get_spec(name).modality == "audio" else IMAGE_SIZE
    src = create_model(name, 10, 3, size)
    path = tmp_path / "w.safetensors"
    # saved from a wrapper (as a Recognizer would): the 'backbone.' prefix is found and stripped
    save_file({"backbone." + k: v for k, v in src.state_dict().items()} | {"frontend.mean": torch.zeros(3)}, str(path))
    model = create_model(name, 4, 1, size, pretrained=str(path))
    s_src = src.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("classifier.") and v.shape == s_src[k].shape:
            assert torch.equal(v, s_src[k]), k
    assert model(torch.randn(2, 1, *size)).shape == (2, 4)

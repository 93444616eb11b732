"""Adversarial training's batch: within its bound, harder for the model than the clean batch, and used by training."""
import pytest
import torch
import torch.nn.functional as F

import seehear
from seehear.engine.adversarial import fgsm_rs_batch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from seehear.data.synth import make_shape_images

    data = make_shape_images(tmp_path_factory.mktemp("adv") / "shapes", classes=2, per_class=20, size=16)
    r = seehear.train(data, tmp_path_factory.mktemp("runs") / "r", progress=False,
                      overrides=["model.name=small_cnn", "train.epochs=6", "train.threads=1", "data.workers=1"])
    return seehear.load_run(r.run_dir).model, data


def test_image_perturbation_is_bounded_and_raises_the_loss(trained):
    model, _ = trained
    torch.manual_seed(0)
    x = (torch.rand(16, 3, 16, 16) * 255).round().to(torch.uint8)
    with torch.no_grad():
        y = model.logits(x).argmax(1)  # the model's own answers: a perturbation that works makes them wrong
    adv = fgsm_rs_batch(model, x, y, eps_pixels=8, snr_db=30, generator=torch.Generator().manual_seed(1))
    assert adv.dtype == torch.float32 and adv.shape == x.shape
    assert (adv * 255 - x.float()).abs().max() <= 8 + 1e-3 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():  # the true class's logit margin (a loss near 0 in float32 would not show it)
        margin = lambda z: z.gather(1, y[:, None])[:, 0] - z.masked_fill(F.one_hot(y, 2).bool(), -1e9).amax(1)  # noqa
        clean, hard = margin(model.logits(x)), margin(model.logits(adv))
    assert (hard < clean).float().mean() >= 0.9


def test_audio_perturbation_keeps_its_snr():
    from seehear.config import RunConfig
    from seehear.models.recognizer import build_recognizer

    cfg = RunConfig().override(["model.name=tcresnet8", "audio.clip_seconds=0.5"])
    model = build_recognizer(cfg, ["a", "b"], "audio").eval()
    x = torch.randn(4, 8000) * 0.1
    adv = fgsm_rs_batch(model, x, torch.tensor([0, 1, 0, 1]), eps_pixels=8, snr_db=30)
    snr = 10 * torch.log10(x.pow(2).mean(-1) / (adv - x).pow(2).mean(-1))
    assert (snr >= 30 - 0.01).all() and (adv != x).any()


def test_training_with_fgsm_changes_training(trained, tmp_path):
    _, data = trained
    common = ["model.name=small_cnn", "train.epochs=3", "train.threads=1", "data.workers=1",
              "train.deterministic=true"]
    plain = seehear.train(data, tmp_path / "plain", overrides=common, progress=False)
    adv = seehear.train(data, tmp_path / "adv", overrides=[*common, "train.adversarial=fgsm"], progress=False)
    log = lambda r: (r.run_dir / "logs" / "metrics.csv").read_text()  # noqa: E731
    assert log(plain) != log(adv) and adv.meta["config"]["train"]["adversarial"] == "fgsm"

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
    nf = seehear.train(data, tmp_path / "nf", overrides=[*common, "train.adversarial=nfgsm"], progress=False)
    log = lambda r: (r.run_dir / "logs" / "metrics.csv").read_text()  # noqa: E731
    assert log(plain) != log(adv) and adv.meta["config"]["train"]["adversarial"] == "fgsm"
    assert log(nf) not in (log(plain), log(adv)) and nf.meta["config"]["train"]["adversarial"] == "nfgsm"


def test_nfgsm_starts_wider_steps_eps_and_is_not_projected(trained):
    """N-FGSM: noise in ±2ε, one step of ε, no projection (images): some pixels move further than ε, none further
    than 3ε; it raises the loss like FGSM-RS; audio keeps its SNR bound."""
    model, _ = trained
    torch.manual_seed(0)
    x = (torch.rand(16, 3, 16, 16) * 127 + 64).round().to(torch.uint8)  # away from 0/255: clamping hides nothing
    with torch.no_grad():
        y = model.logits(x).argmax(1)
    adv = fgsm_rs_batch(model, x, y, eps_pixels=8, snr_db=30, generator=torch.Generator().manual_seed(1),
                        method="nfgsm")
    moved = (adv * 255 - x.float()).abs()
    assert moved.max() <= 24 + 1e-3 and (moved > 8 + 1e-3).float().mean() > 0.2
    with torch.no_grad():
        loss = lambda z: F.cross_entropy(z, y).item()  # noqa: E731
        assert loss(model.logits(adv)) > loss(model.logits(x))
    from seehear.config import RunConfig
    from seehear.models.recognizer import build_recognizer

    audio = build_recognizer(RunConfig().override(["model.name=tcresnet8", "audio.clip_seconds=0.5"]), ["a", "b"],
                             "audio").eval()
    w = torch.randn(4, 8000) * 0.1
    a = fgsm_rs_batch(audio, w, torch.tensor([0, 1, 0, 1]), eps_pixels=8, snr_db=30, method="nfgsm")
    assert (10 * torch.log10(w.pow(2).mean(-1) / (a - w).pow(2).mean(-1)) >= 30 - 0.01).all()

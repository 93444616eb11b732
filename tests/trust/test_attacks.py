import torch

from seehear.trust.attacks import adversarial_eval, eps_for_snr, fgsm, fgsm_random_start, pgd
from seehear.trust.common import forward_signal


def _acc(model, x, y):
    with torch.no_grad():
        return float((forward_signal(model, x).argmax(1) == y).float().mean())


def test_attacks_lower_accuracy_and_respect_the_bound(patch_model, patch_data):
    _, (x, y) = patch_data
    xs = x.float()
    clean = _acc(patch_model, xs, y)
    eps = 8.0
    a_fgsm, a_pgd = fgsm(patch_model, xs, y, eps), pgd(patch_model, xs, y, eps, steps=7)
    a_rs = fgsm_random_start(patch_model, xs, y, eps)
    for adv in (a_fgsm, a_pgd, a_rs):
        assert adv.shape == xs.shape and adv.dtype == xs.dtype
        assert (adv - xs).abs().max() <= eps + 1e-4
        assert adv.min() >= 0 and adv.max() <= 255
    assert _acc(patch_model, a_fgsm, y) < clean - 0.2
    assert _acc(patch_model, a_pgd, y) <= _acc(patch_model, a_fgsm, y) + 0.02  # PGD is at least as strong


def test_adversarial_eval_reports_each_eps(patch_model, patch_data):
    _, (x, y) = patch_data
    r = adversarial_eval(patch_model, x[:64], y[:64], pgd_steps=3)
    assert r["clean_accuracy"] > 0.9 and r["unit"] == "eps_pixels"
    pgd_acc = {row["eps_pixels"]: row["accuracy"] for row in r["results"] if row["attack"] == "pgd"}
    assert set(pgd_acc) == {2.0, 4.0, 8.0}
    assert pgd_acc[8.0] <= pgd_acc[2.0] and pgd_acc[8.0] < r["clean_accuracy"]


def test_audio_attack_at_a_stated_snr(tone_model):
    model, (x, y) = tone_model
    eps = eps_for_snr(x, 20.0)
    adv = fgsm(model, x, y, eps)
    noise = adv - x
    snr = 10 * torch.log10(x.pow(2).mean(-1) / noise.pow(2).mean(-1).clamp(min=1e-12))
    assert (snr >= 20.0 - 0.5).all()  # an L∞ bound at the clip's RMS / 10^(SNR/20) cannot be louder
    r = adversarial_eval(model, x, y, pgd_steps=3)
    assert r["unit"] == "snr_db"
    worst = min(row["accuracy"] for row in r["results"])
    assert worst < r["clean_accuracy"]

"""Trust: calibration, explanations, robustness to corruptions, adversarial accuracy, fairness across groups,
embedding maps and suspected label errors, over a trained classification run (images and audio alike).

    seehear.trust.calibrate(model, x_valid, y_valid)        # sets the model's temperature
    seehear.trust.explain("runs/x", ["a.png"], method="gradcam", out="expl")
    seehear.trust.trust_report("runs/x", "data/x", robustness=True, adversarial=True)
"""
from __future__ import annotations

from seehear.trust.attacks import adversarial_eval, fgsm, fgsm_random_start, pgd
from seehear.trust.calibration import calibrate, fit_temperature
from seehear.trust.explain import explain  # noqa: E402  (the function shadows the module name, on purpose)
from seehear.trust.fairness import fairness_report, group_metrics, group_values, wer_by_group
from seehear.trust.report import trust_report
from seehear.trust.robustness import robustness_eval

__all__ = ["adversarial_eval", "calibrate", "explain", "fairness_report", "fgsm", "fgsm_random_start",
           "fit_temperature", "group_metrics", "group_values", "pgd", "robustness_eval", "trust_report",
           "wer_by_group"]

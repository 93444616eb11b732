"""Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits by minimising NLL with LBFGS.

T divides the logits inside the Recognizer (its `temperature` buffer), so predict, evaluate and the ONNX export
all see calibrated probabilities; accuracy cannot change (argmax is unchanged by a positive scale).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seehear.evaluation.metrics import expected_calibration_error
from seehear.trust.common import batched_logits

T_MIN, T_MAX = 0.05, 20.0  # a fitted T outside this range means the validation logits are degenerate


def ece_nll(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = logits.float()
    probs = torch.softmax(logits, 1).double().numpy()
    return expected_calibration_error(probs, y.numpy()), float(F.cross_entropy(logits, y))


def fit_temperature(logits: torch.Tensor, y: torch.Tensor, iters: int = 100) -> float:
    """The T that minimises NLL(logits / T, y); optimised in log T so it stays positive."""
    logits, y = logits.detach().float(), y.long()
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return float(np.clip(t, T_MIN, T_MAX)) if np.isfinite(t) else 1.0


def calibrate(model, x_valid: torch.Tensor | None, y_valid: torch.Tensor | None, precision: str = "32",
              batch_size: int = 256) -> dict:
    """Fit the model's temperature on validation data and set it; returns {temperature, ece/nll before and
    after, n}. Without validation data the temperature is left alone and the dict says why (`skipped`)."""
    if x_valid is None or y_valid is None or len(y_valid) == 0:
        return {"skipped": "no validation split to fit a temperature on; the model keeps T = "
                           f"{float(model.temperature):.3f}", "temperature": float(model.temperature)}
    y = torch.as_tensor(y_valid).long()
    z = batched_logits(model, x_valid, batch_size, precision, raw=True)
    ece0, nll0 = ece_nll(z, y)
    t = fit_temperature(z, y)
    ece1, nll1 = ece_nll(z / t, y)
    if nll1 > nll0:  # LBFGS cannot do worse than T=1 in theory; guard against a failed line search
        t, ece1, nll1 = 1.0, ece0, nll0
    model.temperature.fill_(t)
    return {"temperature": t, "n": int(len(y)), "ece_before": ece0, "ece_after": ece1,
            "nll_before": nll0, "nll_after": nll1}


def reliability_pair(logits_raw: torch.Tensor, y: torch.Tensor, temperature: float, path) -> None:
    """Reliability diagrams before (T = 1) and after temperature scaling, side by side, in one PNG."""
    from seehear.trust.plots import plot_reliability_pair

    before = torch.softmax(logits_raw.float(), 1).numpy()
    after = torch.softmax(logits_raw.float() / temperature, 1).numpy()
    plot_reliability_pair(before, after, y.numpy(), temperature, path)

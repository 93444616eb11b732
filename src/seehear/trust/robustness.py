"""Accuracy of a model on the corruption suite (seehear.trust.corruptions): per corruption and severity, and the
mean corruption accuracy (mCA, the mean over all corruptions and severities) next to clean accuracy."""
from __future__ import annotations

import torch

from seehear.trust.common import batched_logits
from seehear.trust.corruptions import corrupt, corruptions_for, levels


def robustness_eval(model, x: torch.Tensor, y: torch.Tensor, sample_rate: int = 16000, names=None,
                    batch_size: int = 256, precision: str = "32", seed: int = 0) -> dict:
    """{clean_accuracy, mean_corruption_accuracy, per_corruption: {name: [acc at severity 1..]}, relative}."""
    modality = model.modality
    names = list(names or corruptions_for(modality))
    y = torch.as_tensor(y).long()

    def acc(xs) -> float:
        return float((batched_logits(model, xs, batch_size, precision).argmax(1) == y).float().mean())

    clean = acc(x)
    per: dict[str, list[float]] = {}
    for name in names:
        per[name] = []
        for s in range(1, levels(modality, name) + 1):
            # corrupted in chunks: a whole test set at once would hold float copies of it all
            xs = torch.cat([corrupt(x[i:i + 1024], modality, name, s, seed=seed + i, sample_rate=sample_rate)
                            for i in range(0, len(x), 1024)])
            per[name].append(acc(xs))
    flat = [a for v in per.values() for a in v]
    mca = sum(flat) / len(flat) if flat else float("nan")
    return {"n": int(len(y)), "clean_accuracy": clean, "mean_corruption_accuracy": mca,
            "relative_accuracy": mca / clean if clean else None, "per_corruption": per,
            "severities": {n: levels(modality, n) for n in names},
            "worst": min(per, key=lambda n: sum(per[n]) / len(per[n])) if per else None}

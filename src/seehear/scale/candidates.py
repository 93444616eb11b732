"""What `seehear auto` tries for each kind of data, in one visible place, and how it splits a time budget.

A candidate is a model family (with the optimiser settings it trains well with) and a recipe variant. The first
family of each kind is the recipe's own (recipes.py), unchanged; the others replace the recipe's optimiser where
the recipe's is tuned for its own model only (image-small's SGD at lr 0.375 with norm layers x64 is airbench's
for fastnet: resnet8 reached 42% with it on generated shapes, 53% with AdamW, and a MobileNetV3 diverged).

Variants change one thing of a family's settings: label smoothing, the learning rate (as a factor of the
family's own, `lr_factor`), or the augmentation policy. Candidates are listed families first, then the variants
of the first family, then of the second, ...; `max_candidates` keeps the head of that list.
"""
from __future__ import annotations

# AdamW for families whose recipe optimiser belongs to another model (norm layers at the plain lr, no lookahead).
_ADAMW = {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 5e-2, "norm_lr_scale": 1.0, "decay_norms": False,
          "lookahead": False, "grad_clip": 5.0}

# recipe -> {family name: settings over the recipe}; the first family is the recipe's own model.
FAMILIES: dict[str, dict[str, dict]] = {
    "image-small": {
        "fastnet": {},
        "resnet8": {"model": {"name": "resnet8"}, "train": {**_ADAMW, "batch_size": 64}},
        "small_cnn": {"model": {"name": "small_cnn"}, "train": {**_ADAMW, "batch_size": 64}},
        "mobilenetv3": {"model": {"name": "timm/mobilenetv3_small_100"},
                        "train": {**_ADAMW, "lr": 1e-3, "batch_size": 64}},
    },
    "image-photo": {
        "fastnet": {},
        "resnet18": {"model": {"name": "timm/resnet18"}, "train": {**_ADAMW, "lr": 1e-3, "batch_size": 32}},
        "mobilenetv3": {"model": {"name": "timm/mobilenetv3_small_100"},
                        "train": {**_ADAMW, "lr": 1e-3, "batch_size": 32}},
        "efficientnet_b0": {"model": {"name": "timm/efficientnet_b0"},
                            "train": {**_ADAMW, "lr": 1e-3, "batch_size": 32}},
    },
    "audio-words": {  # the recipe's AdamW 3e-3 one-cycle suits the convolutional families; attention likes 1e-3
        "tcresnet8": {},
        "bcresnet3": {"model": {"name": "bcresnet3"}},
        "kwt_tiny": {"model": {"name": "kwt_tiny"}, "train": {"lr": 1e-3}},
        "conformer_tiny": {"model": {"name": "conformer_tiny"}, "train": {"lr": 1e-3}},
    },
}

_IMAGE_VARIANTS = {
    "ls0": {"train": {"label_smoothing": 0.0}},
    "lr-x0.5": {"lr_factor": 0.5},
    "lr-x2": {"lr_factor": 2.0},
    "trivialaugment": {"augment": {"policy": "trivialaugment"}},
}
VARIANTS: dict[str, dict[str, dict]] = {
    "image-small": _IMAGE_VARIANTS,
    "image-photo": _IMAGE_VARIANTS,
    "audio-words": {
        "ls0": {"train": {"label_smoothing": 0.0}},
        "lr-x0.5": {"lr_factor": 0.5},
        "lr-x2": {"lr_factor": 2.0},
        "aug-strong": {"augment": {"noise_prob": 0.8, "freq_masks": 3, "time_masks": 3}},
    },
}

ETA = 3  # the top 1/ETA of a rung go on, each with ETA times the time
MAX_CANDIDATES = 9  # 9 -> 3 -> 1: three rungs


def all_candidates(recipe: str) -> list[tuple[str, str, dict]]:
    """(name, family, settings) for the recipe's kind of data, in the order they are kept; settings may hold the
    key `lr_factor` (a factor of the family's resolved learning rate)."""
    if recipe not in FAMILIES:
        return []
    fams, out = FAMILIES[recipe], []
    out += [(f, f, dict(s)) for f, s in fams.items()]
    for f, s in fams.items():
        for v, vs in VARIANTS[recipe].items():
            out.append((f"{f}-{v}", f, _merge(s, vs)))
    return out


def rung_sizes(n: int, eta: int = ETA) -> list[int]:
    """Candidates per rung, down to the single winner: 9 -> [9, 3, 1], 4 -> [4, 1], 2 -> [2, 1]."""
    sizes = [n]
    while sizes[-1] > 1:
        sizes.append(max(1, sizes[-1] // eta))
    return sizes


def slots(budget: float, sizes: list[int]) -> list[float]:
    """Seconds of wall clock per run in each rung: every rung gets an equal share of the budget (successive
    halving), so a rung with 1/eta of the candidates gives each eta times as long."""
    return [budget / (len(sizes) * n) for n in sizes]


def largest_fitting(budget: float, most: int, min_run: float, eta: int = ETA) -> int | None:
    """The most candidates (2..most) whose first rung gives each run at least `min_run` seconds; None if none."""
    for n in range(most, 1, -1):
        if slots(budget, rung_sizes(n, eta))[0] >= min_run:
            return n
    return None


def ranking(rung: dict) -> list[str]:
    """A rung's finished candidates, best first: validation accuracy, then lower validation loss, then the order
    they were listed in (the recipe's own family first)."""
    order = {c: i for i, c in enumerate(rung["candidates"])}
    done = [c for c, x in rung["runs"].items() if x["status"] == "done"]
    return sorted(done, key=lambda c: (-rung["runs"][c]["val_accuracy"], rung["runs"][c].get("val_loss") or 0.0,
                                       order.get(c, len(order))))


def _merge(a: dict, b: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in a.items()}
    for k, v in b.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


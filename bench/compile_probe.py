"""Does torch.compile pay off for the image-small training step on this CPU? Times eager and compiled fastnet
training steps (batch 256, bf16 autocast, channels-last, Nesterov SGD) side by side: the seconds of the first two
steps (where compilation happens) and steady-state images per second.

    .venv/bin/python bench/compile_probe.py      → bench/results/probes/torch-compile.json   (~2 minutes)
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from common import Bench

BATCH, STEPS = 256, 20


def measure(compiled: bool) -> dict:
    from seehear.models.vision.fastnet import FastNet

    torch.manual_seed(0)
    net = FastNet(10, logit_scale=1 / 9, bn_weight=False).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.85, nesterov=True)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    f = torch.compile(net) if compiled else net

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(f(x).float(), y, label_smoothing=0.2)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = time.perf_counter()
    step(), step()
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(STEPS):
        step()
    return {"first_two_steps_s": round(first, 1), "images_per_s": round(BATCH * STEPS / (time.perf_counter() - t), 1)}


if __name__ == "__main__":
    with Bench("probes/torch-compile") as b:
        eager, comp = measure(False), measure(True)
        b.figures.update({"threads": torch.get_num_threads(), "batch": BATCH, "eager": eager, "compiled": comp,
                          "speedup": round(comp["images_per_s"] / eager["images_per_s"], 3)})
        b.notes.append("torch.compile pays off only if speedup > 1 and the compile seconds are won back in the budget")

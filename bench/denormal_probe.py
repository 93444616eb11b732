"""Does flushing denormal floats to zero speed up CPU training? seehear's trainer turns it on (engine/trainer.py);
this probe trains fastnet_wide (batch 1024) for a fixed time three ways, each in its own process, side by side:
real CIFAR-10 images with the flush, real images without it, random pixels without it (few denormals).

    python bench/denormal_probe.py      # → bench/results/probes/denormal-flush.json (~3 min)

Needs the uint8 cache that bench/cifar10_peer.py writes (it decodes the JPEGs on its first run).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, Bench

SECONDS = 40
ARMS = ("real+flush", "real", "random")


def arm(kind: str) -> dict:
    import torch

    from cifar10_peer import load
    from seehear.engine.trainer import fit
    from seehear.models.recognizer import build_recognizer
    from seehear.recipes import resolve

    x, y = load("train")
    if kind == "random":
        x = torch.randint(0, 256, x.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    if kind != "real+flush":
        torch.set_flush_denormal = lambda on: False  # what fit() calls: now a no-op that reports "unsupported"
    cfg = resolve("image-small", overrides=["model.name=fastnet_wide", "train.batch_size=1024", "train.lr=1.5",
                                            f"train.time_budget={SECONDS}"])
    model = build_recognizer(cfg, [str(i) for i in range(10)], "image")
    with tempfile.TemporaryDirectory() as d:
        info = fit(model, cfg, (x, y), None, Path(d), progress=False)
    return {"arm": kind, "steps": info["steps"], "train_seconds": info["train_seconds"],
            "train_images_per_s": round(info["steps"] * 1024 / info["train_seconds"], 1)}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--arm":
        print(json.dumps(arm(sys.argv[2])))
        return 0
    with Bench("denormal-flush") as b:
        runs = []
        for kind in ARMS:
            out = subprocess.run([sys.executable, __file__, "--arm", kind], capture_output=True, text=True,
                                 check=True, cwd=Path(__file__).parent)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
        ips = {r["arm"]: r["train_images_per_s"] for r in runs}
        b.figures.update({"seconds_per_arm": SECONDS, "runs": runs,
                          "speedup_flush_on_real_images": round(ips["real+flush"] / ips["real"], 3)})
    src = RESULTS / "denormal-flush.json"  # Bench writes to bench/results; probes live one folder down
    (RESULTS / "probes").mkdir(exist_ok=True)
    src.replace(RESULTS / "probes" / "denormal-flush.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Synthetic training data (task: synthesize): a class-conditional GAN (models/vision/gan.py, engine/gan.py) trained
on a folder of small labelled images over the shared lifecycle, then `generate` writes PNGs in a folder per class,
which `seehear train` reads like any other data (e.g. beside the real images for the rare classes).

    seehear synthesize DATA --out runs/gan --time-budget 30m
    seehear synthesize runs/gan --per-class 500 --out synthetic/
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seehear.atomic import atomic_write
from seehear.data.cache import decode_all
from seehear.data.sources import load_source, require_trainable
from seehear.engine.loaders import Batches
from seehear.engine.synthetic import build_gan, load_gan
from seehear.engine.trainer import fit_module
from seehear.errors import ConfigError, DataError
from seehear.models.vision.gan import GAN, check_size
from seehear.recipes import resolve
from seehear.tasks.base import Prepared, Task

RECIPE = "gan-small"


class Synthesize(Task):
    name = "synthesize"

    def load(self, data, label_pattern, modality="auto"):
        source = load_source(data, label_pattern=label_pattern)
        if source.modality != "image":
            raise DataError(f"{source.root} holds {source.modality}: the GAN makes images only (a folder of image "
                            f"subfolders, one per class)")
        return require_trainable(source)

    def resolve(self, source, user, overrides):
        cfg = resolve(RECIPE, user, list(overrides))
        cfg.modality = "image"
        check_size(cfg.image.size)
        if cfg.train.grad_clip or cfg.train.ema or cfg.train.lookahead:
            raise ConfigError("the GAN trains with manual optimisation: train.grad_clip, train.ema and "
                              "train.lookahead do not apply (its generator average is model.kwargs.ema)")
        d_steps = cfg.model.kwargs.get("d_steps", 1)
        if not isinstance(d_steps, int) or isinstance(d_steps, bool) or d_steps < 1:
            raise ConfigError(f"model.kwargs.d_steps (discriminator steps per generator step) must be a whole "
                              f"number of at least 1, not {d_steps!r}")
        return cfg, RECIPE

    def prepare(self, source, cfg, out, resume, progress):
        labels = source.labels
        decoded = decode_all(source.records, cfg, "image", workers=cfg.data.workers, progress=progress)
        if not decoded.keep:
            raise DataError(f"no image in {source.root} could be decoded ({len(decoded.skipped)} files skipped)")
        idx = {l: i for i, l in enumerate(labels)}
        y = torch.tensor([idx[source.records[i].label] for i in decoded.keep], dtype=torch.long)
        model = build_gan(cfg, labels)
        meta = {"modality": "image", "labels": labels,
                "input": {"modality": "image", "channels": cfg.image.channels, "size": cfg.image.size},
                "data": {"counts": {"train": len(y)},
                         "train_per_class": dict(zip(labels, torch.bincount(y, minlength=len(labels)).tolist()))}}
        return Prepared(model, meta, decoded.skipped, {"x": decoded.x, "y": y})

    def fit(self, p, cfg, out, resume, progress):
        from seehear.engine.gan import GanModule

        x, y = p.state["x"], p.state["y"]
        loader = Batches(x, y, min(cfg.train.batch_size, len(y)), shuffle=True, seed=cfg.train.seed,
                         drop_last=True)
        module = GanModule(p.model, cfg, steps_per_epoch=len(loader))
        return fit_module(module, cfg, loader, None, out, resume=resume, progress=progress)

    def measure(self, p, cfg, out):
        """No held-out score (FID needs a pretrained network, not shipped offline): a PNG of samples per class for
        the report, and the class balance it was trained on."""
        write_sample_grid(p.model, out / "samples.png", cfg.train.seed)
        return "train", {"train": {"samples_png": "samples.png", "classes": len(p.model.labels)}}


def write_sample_grid(model: GAN, path: Path, seed: int = 0, per_class: int = 8) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(model.labels)
    y = torch.arange(k).repeat_interleave(per_class)
    imgs = model.sample(y, torch.Generator().manual_seed(seed)).permute(0, 2, 3, 1).numpy()
    fig = Figure(figsize=(per_class * 0.9, k * 0.95 + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(k, per_class, squeeze=False))
    for i, ax in enumerate(axes.flat):
        im = imgs[i]
        ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None, vmin=0,
                  vmax=255, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if i % per_class == 0:
            ax.set_ylabel(model.labels[i // per_class], fontsize=7, rotation=0, ha="right")
    fig.suptitle("Generated samples (EMA generator), one row per class", fontsize=9)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


# --- using a trained GAN -----------------------------------------------------------------------------------------

def generate(run, out, *, per_class: int = 500, seed: int = 0, batch_size: int = 256) -> dict:
    """Write per_class PNGs (gan_00000.png ...) into OUT/<class>/ for every class the GAN learned."""
    from PIL import Image

    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, not {per_class}")
    model, cfg, _ = load_gan(run)
    out = Path(out)
    g = torch.Generator().manual_seed(seed)
    written = {}
    for c, label in enumerate(model.labels):
        folder = out / label
        for i in range(0, per_class, batch_size):
            n = min(batch_size, per_class - i)
            imgs = model.sample(torch.full((n,), c, dtype=torch.long), g).permute(0, 2, 3, 1).numpy()
            for j, im in enumerate(imgs):
                pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
                atomic_write(folder / f"gan_{i + j:05d}.png", lambda tmp, p=pil: p.save(tmp, format="PNG"))
        written[label] = per_class
    return {"out": str(out), "per_class": written, "size": cfg.image.size, "channels": cfg.image.channels}


# --- how good the images are ---------------------------------------------------------------------------------------

def _sample(indices: list[int], n: int, seed: int) -> list[int]:
    if len(indices) <= n:
        return list(indices)
    pick = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return [indices[i] for i in pick.tolist()]


def _real_images(loaded, classes: list[str], n: int, seed: int, progress: bool) -> dict:
    """Up to n training and n held-out (test, else valid) images of the classifier's own data, in `classes`."""
    from seehear.data.splits import load_splits

    src = (loaded.meta.get("data") or {}).get("source")
    if not src or not Path(src).exists():
        raise DataError(f"the classifier {loaded.run_dir} was trained on {src}, which is not there any more: the "
                        f"real images are needed for the floor figures")
    source = load_source(src, label_pattern=loaded.cfg.data.label_pattern)
    splits = load_splits(source.records, loaded.run_dir / "split.json")
    keep = set(classes)
    held_split = "test" if splits.get("test") else "valid"
    out = {"held_out_split": held_split}
    for name, split in (("train", "train"), ("held_out", held_split)):
        idx = _sample([i for i in splits.get(split, []) if source.records[i].label in keep], n, seed)
        d = decode_all([source.records[i] for i in idx], loaded.cfg, "image", workers=loaded.cfg.data.workers,
                       progress=progress)
        if len(d.keep) <= 3:
            raise DataError(f"only {len(d.keep)} {split} images of {src} could be decoded: too few to compare with")
        out[name] = (d.x, [source.records[idx[i]].label for i in d.keep])
    return out


def evaluate_gan(run, classifier, *, per_class: int = 200, seed: int = 0, progress: bool = False) -> dict:
    """Fréchet distance, precision and recall (k=3) of per_class generated images per class against the classifier's
    real training images, on that classifier's penultimate features, beside the same figures for its real held-out
    images (the floor); gan_test_accuracy = the classifier's accuracy on the generated images w.r.t. the class
    they were generated for. Writes RUN/quality.json and the report's section."""
    from seehear.atomic import write_json
    from seehear.engine import run_folder as rf
    from seehear.engine.trainer import predict_probs, set_threads
    from seehear.errors import InputMismatchError, RunError
    from seehear.evaluation import write_report
    from seehear.evaluation.gan_quality import compare
    from seehear.trust.embeddings import embed

    if per_class < 2:
        raise ConfigError(f"--per-class must be at least 2 to measure, not {per_class}")
    run = Path(run)
    gan, gcfg, _ = load_gan(run)
    if rf.run_task(classifier) != "classify":
        raise RunError(f"--evaluate {classifier} is a {rf.run_task(classifier)} run: give a classification run "
                       f"trained on the real images (`seehear train DATA --out RUN`)")
    loaded = rf.load_run(classifier)
    set_threads(loaded.cfg)
    made = (gcfg.image.channels, gcfg.image.size)
    if loaded.modality != "image" or (loaded.cfg.image.channels, loaded.cfg.image.size) != made:
        raise InputMismatchError(f"--evaluate {classifier} reads {loaded.modality} ({loaded.cfg.image.channels}x"
                                 f"{loaded.cfg.image.size}px), the GAN makes {made[0]}x{made[1]}px images: give a "
                                 f"classifier trained at the GAN's image size")
    classes = [l for l in gan.labels if l in loaded.labels]
    if not classes:
        raise DataError(f"the GAN's classes ({', '.join(gan.labels[:10])}) and the classifier's "
                        f"({', '.join(loaded.labels[:10])}) have no name in common")
    g = torch.Generator().manual_seed(seed)
    gen_x = torch.cat([gan.sample(torch.full((per_class,), gan.labels.index(l), dtype=torch.long), g)
                       for l in classes])
    gen_label = [l for l in classes for _ in range(per_class)]
    real = _real_images(loaded, classes, len(gen_x), seed, progress)
    feats = {k: embed(loaded.model, x).numpy() for k, x in
             (("train", real["train"][0]), ("held_out", real["held_out"][0]), ("generated", gen_x))}
    index = {l: i for i, l in enumerate(loaded.labels)}

    def accuracy(x, labels) -> tuple[float, dict]:
        pred = predict_probs(loaded.model, x, precision=loaded.cfg.train.precision).argmax(1)
        right = (pred == torch.tensor([index[l] for l in labels])).numpy()
        per = {l: float(right[[i for i, m in enumerate(labels) if m == l]].mean()) for l in classes if l in labels}
        return float(right.mean()), per

    gan_acc, gan_per = accuracy(gen_x, gen_label)
    real_acc, _ = accuracy(*real["held_out"])
    if not (run / "samples.png").is_file():
        write_sample_grid(gan, run / "samples.png", seed)
    q = {"gan": str(run.resolve()), "classifier": str(Path(classifier).resolve()), "classes": classes,
         "features": f"penultimate features of the classifier ({loaded.cfg.model.name}, {feats['train'].shape[1]} "
                     f"dims)", "per_class": per_class, "seed": seed, "held_out_split": real["held_out_split"],
         "generated": compare(feats["train"], feats["generated"]),
         "real_held_out": compare(feats["train"], feats["held_out"]),
         "gan_test_accuracy": gan_acc, "gan_test_per_class": gan_per, "real_held_out_accuracy": real_acc,
         "samples_png": "samples.png",
         "notes": ["reference: the classifier's real training images; real_held_out is the floor (what real images "
                   "the classifier never saw score); the Fréchet distance grows as sets get smaller, so compare "
                   "figures at similar n",
                   "if the GAN was trained on the classifier's held-out images too, the floor is not a clean one"]}
    write_json(run / "quality.json", q)
    write_report(run)
    return q


def format_quality(q: dict) -> str:
    rows = [("", "generated", f"real {q['held_out_split']} (floor)")]
    for key, name in (("frechet", "Fréchet distance"), ("precision", "precision (k=3)"), ("recall", "recall (k=3)"),
                      ("n", "images")):
        g, r = q["generated"][key], q["real_held_out"][key]
        rows.append((name, f"{g:.4g}" if isinstance(g, float) else str(g), f"{r:.4g}" if isinstance(r, float) else
                     str(r)))
    rows.append(("classifier accuracy", f"{q['gan_test_accuracy']:.3f}", f"{q['real_held_out_accuracy']:.3f}"))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines + [f"features: {q['features']}; reference: {q['generated']['n_reference']} real training "
                              f"images"])


TASK = Synthesize()
__all__ = ["TASK", "generate", "load_gan", "build_gan", "write_sample_grid", "evaluate_gan", "format_quality"]

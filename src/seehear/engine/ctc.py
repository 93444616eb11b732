"""The training step for transcription (CTC), and the loader that batches recordings of similar length.

Batches hold recordings of similar length (sorted, then cut into batches of at most `max_samples` padded samples)
so little compute goes to padding; the batch order is reshuffled each epoch from (seed, epoch), except with
train.sortagrad, where the first epoch goes shortest batch first. With sampling weights (train.sampler=
group_balanced, or equal ones with train.batches=redrawn) each epoch first draws its recordings, with replacement,
then batches them the same way, so the batches differ from epoch to epoch.
Schedule, optimiser, time budget and resume come from TrainModule (engine/base_module.py). With
train.inter_ctc_weight w the loss is (1 - w) CTC(last block) + w CTC(middle block) (intermediate CTC, Lee & Watanabe
2021); engine/plateau.py records when the greedy output of the training batches stops being empty
(meta.json["train"]["ctc"]).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from seehear.config import RunConfig
from seehear.data.cache import DecodedWaves
from seehear.data.decode import pcm_to_float
from seehear.engine.base_module import TrainModule
from seehear.engine.plateau import PlateauTracker
from seehear.engine.loaders import EpochCounter, shard
from seehear.models.transcriber import Transcriber


def ctc_collapse(path: list[int], blank: int = 0) -> list[int]:
    """A best path's tokens: repeats merged, blanks dropped (the CTC rule)."""
    return [t for i, t in enumerate(path) if t != blank and (i == 0 or t != path[i - 1])]


def _cut(order: list[int], lengths, budget: int) -> list[list[int]]:
    """Rows sorted by length, cut into batches of at most `budget` padded samples (at least one row each)."""
    batches: list[list[int]] = []
    cur: list[int] = []
    for r in order:
        longest = int(lengths[r])  # sorted ascending: the newest is the longest
        if cur and longest * (len(cur) + 1) > budget:
            batches.append(cur)
            cur = []
        cur.append(r)
    if cur:
        batches.append(cur)
    return batches


def _cut_into(order: list[int], lengths: list[int], k: int) -> list[list[int]]:
    """Rows sorted by length, cut into exactly k batches (k <= len(order)) with the smallest padded-sample budget
    that greedy cutting meets in k or fewer (bisection), then the costliest batches halved until there are k."""
    lo, hi = lengths[order[-1]], lengths[order[-1]] * len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if len(_cut(order, lengths, mid)) <= k else (mid + 1, hi)
    batches = _cut(order, lengths, lo)
    while len(batches) < k:
        i = max((i for i, b in enumerate(batches) if len(b) > 1),
                key=lambda i: len(batches[i]) * lengths[batches[i][-1]])
        b = batches[i]
        batches[i:i + 1] = [b[:len(b) // 2], b[len(b) // 2:]]
    return batches


class LengthBatches(EpochCounter):
    """sample_weights (one per row, e.g. 1 / the row's group count: train.sampler=group_balanced): each epoch
    draws as many rows as there are, with replacement, seeded by (seed, epoch), and cuts the draw into as many
    length-sorted batches as the rows themselves make (the schedule's steps per epoch stay fixed)."""

    def __init__(self, waves: DecodedWaves, rows: list[int], targets: list[list[int]], batch_size: int,
                 shuffle: bool, seed: int = 0, sortagrad: bool = False,
                 sample_weights: torch.Tensor | None = None):
        self.waves, self.targets, self.shuffle, self.seed, self.epoch = waves, targets, shuffle, seed, 0
        self.sortagrad, self.rows, self.weights = sortagrad, list(rows), sample_weights
        if sample_weights is not None and len(sample_weights) != len(rows):
            raise ValueError(f"sample_weights must be one per row; got {len(sample_weights)} for {len(rows)} rows")
        lens = waves.lengths[rows]
        order = [rows[i] for i in torch.argsort(lens, stable=True).tolist()]
        # Budget in padded samples: batch_size recordings of the typical (median) length.
        budget = batch_size * max(1, int(lens.median())) if len(rows) else 1
        self.batches: list[list[int]] = _cut(order, waves.lengths, budget)

    def __len__(self) -> int:
        return len(shard(list(range(len(self.batches)))))

    def order(self, epoch: int) -> list[int]:
        """Batch indices of an epoch (batches are numbered shortest first)."""
        return self._order(epoch, None)

    def _order(self, epoch: int, g: torch.Generator | None) -> list[int]:
        idx = list(range(len(self.batches)))
        if self.shuffle and not (self.sortagrad and epoch == 0):
            g = g or torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            idx = torch.randperm(len(idx), generator=g).tolist()
        return shard(idx)  # data parallel: whole batches per rank, from the order every rank computes alike

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The rows of each batch this rank trains on in `epoch`, in order."""
        if self.weights is None or not self.shuffle:
            return [self.batches[i] for i in self.order(epoch)]
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)  # every rank draws alike, then shards
        drawn = [self.rows[i] for i in torch.multinomial(self.weights.double(), len(self.rows), replacement=True,
                                                         generator=g).tolist()]
        drawn = [drawn[i] for i in torch.argsort(self.waves.lengths[drawn], stable=True).tolist()]
        batches = _cut_into(drawn, [int(v) for v in self.waves.lengths.tolist()], len(self.batches))
        return [batches[i] for i in self._order(epoch, g)]

    def __iter__(self):
        for rows in self.epoch_batches(self.begin_epoch()):
            x, lens = self.waves.batch(rows)
            tg = [self.targets[r] for r in rows]
            yield (x, lens, torch.tensor([t for s in tg for t in s], dtype=torch.long),
                   torch.tensor([len(s) for s in tg], dtype=torch.long))


class CTCModule(TrainModule):
    def __init__(self, model: Transcriber, cfg: RunConfig, steps_per_epoch: int):
        super().__init__(model, cfg, steps_per_epoch)
        self.inter_weight = float(cfg.train.inter_ctc_weight)
        if self.inter_weight and not getattr(model.acoustic, "supports_inter_ctc", False):
            from seehear.errors import ConfigError

            raise ConfigError(f"train.inter_ctc_weight needs a model with a middle block to read (conformer_ctc*, "
                              f"transformer_ctc), not {type(model.acoustic).__name__}")
        self.plateau = PlateauTracker()

    def _augment_batch(self, x: torch.Tensor, lens: torch.Tensor):
        """Speed perturbation per batch (one factor: lengths scale exactly), then gain and noise per recording."""
        from seehear.features.augment import augment_waves

        g = self.cfg.augment
        x = pcm_to_float(x)
        if g.speed:
            lo, hi = float(g.speed[0]), float(g.speed[-1])
            f = round(float(torch.empty(()).uniform_(lo, hi)), 2)  # as num/100: a small resampling kernel
            num = int(round(f * 100))
            if num != 100:
                x = AF.resample(x, num, 100)
                lens = torch.clamp((lens * 100 + num - 1) // num, max=x.shape[-1])
        cfg = type(g)(**{**g.__dict__, "speed": None, "time_shift": 0.0})
        return augment_waves(x, cfg, self.cfg.audio.sample_rate), lens

    def _ctc(self, batch, train: bool):
        x, lens, targets, target_lens = batch
        if train:
            with self.data_time():
                x, lens = self._augment_batch(x, lens)
        else:
            x = pcm_to_float(x)
        # zero_infinity: a recording too short for its transcript gives no gradient instead of NaN
        ctc = lambda lp: F.ctc_loss(lp.transpose(0, 1), targets, out_lens, target_lens, blank=0,  # noqa: E731
                                    reduction="mean", zero_infinity=True)
        if train and self.inter_weight:
            log_probs, out_lens, middle = self.model.forward_inter(x, lens)
            final, inter = ctc(log_probs), ctc(middle)
            self.log("train_inter_ctc", inter, on_step=False, on_epoch=True, batch_size=len(lens))
            return (1 - self.inter_weight) * final + self.inter_weight * inter, log_probs, out_lens
        log_probs, out_lens = self.model(x, lens)
        return ctc(log_probs), log_probs, out_lens

    def training_step(self, batch, _):
        self.start_step()
        loss, log_probs, out_lens = self._ctc(batch, train=True)
        self.plateau.update(self.global_step, self.train_seconds, log_probs, out_lens, int(batch[3].sum()))
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch[1]))
        return loss

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        checkpoint["seehear_ctc_plateau"] = self.plateau.state_dict()

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        self.plateau.load_state_dict(checkpoint.get("seehear_ctc_plateau"))

    def validation_step(self, batch, _):
        loss, log_probs, out_lens = self._ctc(batch, train=False)
        # greedy character error rate: cheap, and tracks the WER the decoder will get
        x, lens, targets, target_lens = batch
        best = log_probs.argmax(-1)
        errs, total, start = 0, 0, 0
        for b in range(len(lens)):
            path = best[b, : out_lens[b]].tolist()
            hyp = ctc_collapse(path)
            ref = targets[start:start + target_lens[b]].tolist()
            start += int(target_lens[b])
            errs += _edit_distance(hyp, ref)
            total += max(1, len(ref))
        n = len(lens)
        self.log("val_loss", loss, prog_bar=True, batch_size=n)
        self.log("val_uer", errs / total, prog_bar=True, batch_size=n)  # unit error rate (chars or pieces)


def _edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]

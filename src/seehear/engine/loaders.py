"""Batch loaders over in-memory tensors: whole batches sliced from the decoded uint8 pixels / int16 samples, no
per-sample Python in the hot path. `Prefetch` prepares the next batches in a background thread (audio on CPU).
"""
from __future__ import annotations

import math

import torch


def world() -> tuple[int, int]:
    """(rank, world size) under torch.distributed, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard(order):
    """This rank's part of a seeded order that every rank computes alike: every w-th item from the rank's offset.
    The order is first cut to a multiple of w (a different few left out each epoch when it is shuffled), so every
    rank gets as many items, hence as many batches: a rank with one batch more would wait forever in all-reduce."""
    r, w = world()
    if w == 1:
        return order
    return order[:len(order) - len(order) % w][r::w]


class EpochCounter:
    """The epoch a loader's shuffle (and augmentation seed) comes from. Counted per pass by default; a trainer
    that resumes a run makes the loader `follow` its own epoch, so that a resumed run's next epoch is shuffled as
    it would have been without the interruption (not as epoch 0 again)."""

    epoch = 0
    epoch_of = None  # a callable giving the trainer's current epoch, once followed

    def follow(self, epoch_of) -> None:
        self.epoch_of = epoch_of

    def begin_epoch(self) -> int:
        """The epoch of the pass that is starting (read when the pass's first batch is made)."""
        if self.epoch_of is not None:
            self.epoch = int(self.epoch_of())
        e = self.epoch
        self.epoch = e + 1
        return e


class Batches(EpochCounter):
    """An epoch of (x, y) batches from in-memory tensors; reshuffled each epoch from (seed, epoch).

    alternate_flip: images are mirrored on alternate epochs (each image starts on a random side), so that every
    two epochs show each image both ways, which random flips only do on average (airbench's "alternating flip").
    Under torch.distributed each rank takes its own slice of the shuffled order (data parallel)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, sample_weights: torch.Tensor | None = None, alternate_flip: bool = False):
        self.x, self.y, self.bs, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.drop_last, self.weights, self.epoch = drop_last and len(y) > batch_size, sample_weights, 0
        self.first_side = None
        if alternate_flip and x.dim() == 4:
            g = torch.Generator().manual_seed(seed * 7_919 + 1)
            self.first_side = torch.rand(len(y), generator=g) < 0.5

    def _order(self, epoch: int) -> torch.Tensor:
        n = len(self.y)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.weights is not None:  # class-balanced sampling, with replacement
            return torch.multinomial(self.weights, n, replacement=True, generator=g)
        return torch.randperm(n, generator=g)

    def _shard(self, order):
        return shard(order)

    def __len__(self) -> int:
        n = len(self._shard(torch.arange(len(self.y))))
        return n // self.bs if self.drop_last else math.ceil(n / self.bs)

    def __iter__(self):
        e = self.begin_epoch()
        order = self._shard(self._order(e))
        for i in range(len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            x = self.x[idx]
            if self.first_side is not None:
                flip = self.first_side[idx] ^ bool((e + 1) % 2)
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            yield x, self.y[idx]


class Prefetch(EpochCounter):
    """Prepares the next `depth` batches in a background thread while the model trains on the current one: what
    DataLoader workers do, without processes (the data is already one in-memory tensor, and torch ops release the
    GIL). `transform(x, generator)` is the batch augmentation; its generator is seeded from (seed, epoch), so a
    run stays repeatable however the two threads interleave."""

    _END = object()

    def __init__(self, loader, transform, seed: int = 0, depth: int = 2):
        self.loader, self.transform, self.seed, self.depth, self.epoch = loader, transform, seed, depth, 0

    def __len__(self) -> int:
        return len(self.loader)

    def follow(self, epoch_of) -> None:
        super().follow(epoch_of)
        if hasattr(self.loader, "follow"):
            self.loader.follow(epoch_of)

    def __iter__(self):
        import queue
        import threading

        q: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.begin_epoch())

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work():
            # One thread for the worker's own ops: left at the default it starts an OpenMP team as large as the
            # model's, and on 2 cores the extra spinning threads slowed CIFAR's training kernels by a third.
            torch.set_num_threads(1)  # per thread: the training thread keeps its own setting
            try:
                for x, y in self.loader:
                    if not put((self.transform(x, g), y)):
                        return
            except BaseException as e:  # handed to the training thread, which raises it
                put(e)
            put(self._END)

        worker = threading.Thread(target=work, name="seehear-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:  # also when training stops mid-epoch (time budget, Ctrl-C)
            stop.set()
            worker.join(timeout=5)

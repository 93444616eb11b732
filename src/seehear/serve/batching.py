"""Dynamic batching: requests wait in a bounded queue, a collector gathers up to max_batch of them (waiting at most
max_wait_ms for more once one has arrived), and one worker thread makes one model call per batch, so the event
loop stays free to read the next requests meanwhile.

A full queue refuses at once (HTTP 503 with Retry-After) instead of growing: latency stays bounded under overload.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from seehear.serve.limits import HTTPError


class Batcher:
    """fn(list of items) -> list of results, one per item (an Exception instance for an item that failed)."""

    def __init__(self, name: str, fn: Callable[[list], list], *, max_batch: int, max_wait_ms: float, max_queue: int,
                 workers: int = 1, metrics=None):
        self.name, self.fn, self.metrics = name, fn, metrics
        self.max_batch, self.max_wait, self.max_queue = max(1, max_batch), max_wait_ms / 1000, max(1, max_queue)
        self.workers = max(1, workers)  # batches in flight at once (each in its own thread)
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix=f"batch-{name}")
        self.task: asyncio.Task | None = None
        self.inflight: set[asyncio.Task] = set()

    def start(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        self.free = asyncio.Semaphore(self.workers)
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        for t in [self.task, *self.inflight]:
            if t:
                t.cancel()
        await asyncio.gather(*(t for t in [self.task, *self.inflight] if t), return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def submit(self, item: Any, timeout: float) -> Any:
        fut = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            if self.metrics:
                self.metrics.rejected.labels(self.name).inc()
            raise HTTPError(503, f"model {self.name} is busy ({self.max_queue} requests waiting); retry shortly",
                            {"Retry-After": "1"}) from None
        self._gauge()
        try:
            result = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise HTTPError(503, f"model {self.name} did not answer within {timeout:g} s; retry shortly",
                            {"Retry-After": "2"}) from None
        if isinstance(result, Exception):
            raise result
        return result

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.free.acquire()  # while every worker is busy, requests gather in the queue: bigger batches
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if self.queue.empty():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self.queue.get(), left))
                    except asyncio.TimeoutError:
                        break
                else:
                    batch.append(self.queue.get_nowait())
            self._gauge()
            batch = [(x, f) for x, f in batch if not f.done()]  # timed-out callers are gone: skip their work
            if not batch:
                self.free.release()
                continue
            t = loop.create_task(self._run(batch))
            self.inflight.add(t)
            t.add_done_callback(self.inflight.discard)

    async def _run(self, batch: list) -> None:
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self._call,
                                                                       [x for x, _ in batch])
        except Exception as e:  # noqa: BLE001 - a bug in the model call must not stop the collector
            results = [e] * len(batch)
        finally:
            self.free.release()
        for (_, f), r in zip(batch, results):
            if not f.done():
                f.set_result(r)

    def _call(self, items: list) -> list:
        import time

        t0 = time.perf_counter()
        out = self.fn(items)
        if self.metrics:
            self.metrics.batch_size.labels(self.name).observe(len(items))
            self.metrics.model_seconds.labels(self.name).observe(time.perf_counter() - t0)
        return out

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())

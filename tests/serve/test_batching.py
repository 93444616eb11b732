"""The batcher on its own: concurrent submissions share one model call, a full queue refuses with 503 at once, a
failing item fails alone."""
from __future__ import annotations

import asyncio
import threading

import pytest

from seehear.serve.batching import Batcher
from seehear.serve.limits import HTTPError, sniff
from seehear.serve.metrics import Metrics


def test_concurrent_requests_share_one_call():
    calls = []

    def fn(items):
        calls.append(list(items))
        return [x * 10 if x != 3 else HTTPError(422, "three is bad") for x in items]

    async def go():
        b = Batcher("m", fn, max_batch=8, max_wait_ms=500, max_queue=64, metrics=Metrics())
        b.start()
        try:
            return await asyncio.gather(*(b.submit(i, timeout=10) for i in range(8)), return_exceptions=True)
        finally:
            await b.stop()

    out = asyncio.run(go())
    assert calls == [list(range(8))]  # eight submissions, one call (max_batch reached before the wait ended)
    assert out[:3] == [0, 10, 20] and isinstance(out[3], HTTPError) and out[3].status == 422 and out[7] == 70


def test_full_queue_refuses_at_once():
    release = threading.Event()

    def fn(items):
        release.wait(10)
        return items

    async def go():
        b = Batcher("m", fn, max_batch=1, max_wait_ms=0, max_queue=2, workers=1)
        b.start()
        first = asyncio.ensure_future(b.submit("a", timeout=10))
        await asyncio.sleep(0.05)  # the collector takes "a" and blocks in fn; the queue is empty again
        queued = [asyncio.ensure_future(b.submit(x, timeout=10)) for x in "bc"]
        await asyncio.sleep(0)
        with pytest.raises(HTTPError) as e:
            await b.submit("d", timeout=10)
        release.set()
        got = await asyncio.gather(first, *queued)
        await b.stop()
        return e.value, got

    err, got = asyncio.run(go())
    assert err.status == 503 and err.headers["Retry-After"] and got == ["a", "b", "c"]


@pytest.mark.parametrize("head,kind", [
    (b"\x89PNG\r\n\x1a\n....", ("image", "png")), (b"\xff\xd8\xff\xe0", ("image", "jpeg")),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", ("audio", "wav")), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ("image", "webp")),
    (b"fLaC\x00", ("audio", "flac")), (b"<html>", None), (b"PK\x03\x04", None)])
def test_content_is_sniffed_from_bytes(head, kind):
    assert sniff(head) == kind

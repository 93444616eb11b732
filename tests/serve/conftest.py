"""A real server: `python -m seehear serve` as a uvicorn subprocess on a free loopback port, and small trained
runs to serve (an image classifier trained in seconds; a streaming transcriber on espeak-ng sentences)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, runs, *args: str, ready_s: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "seehear", "serve", *map(str, runs), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.proc.stdout.read()}")
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not become ready")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, parsed JSON or raw bytes) over real HTTP."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, hdrs, data = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, data = e.code, dict(e.headers), e.read()
        ctype = hdrs.get("content-type", "")
        return status, hdrs, json.loads(data) if ctype.startswith("application/json") else data

    def get(self, path: str, **kw):
        s, _, d = self.request("GET", path, **kw)
        return s, d

    def post(self, path: str, body: bytes, **kw):
        s, _, d = self.request("POST", path, body, **kw)
        return s, d

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read()


@contextlib.contextmanager
def serving(runs, *args: str):
    s = Server(runs, *args)
    try:
        yield s
    finally:
        s.stop()


def multipart(data: bytes, filename: str = "x.png", field: str = "file") -> tuple[bytes, dict]:
    b = "seehearboundary7MA4YWxkTrZu0gW"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    """A shapes classifier (circle / square / triangle), trained for two epochs: a few seconds."""
    import seehear
    from seehear.data.synth import make_shape_images

    root = tmp_path_factory.mktemp("serve")
    data = make_shape_images(root / "shapes", classes=3, per_class=40, size=32)
    out = root / "shapes32"
    seehear.train(str(data), str(out), overrides=["train.epochs=2", "train.threads=1", "train.batch_size=16",
                                                  "data.workers=1"], progress=False)
    return out, data


@pytest.fixture(scope="session")
def stream_run(tmp_path_factory):
    """A streaming transcriber (lstm_ctc_stream, one small layer) on espeak-ng digit sentences: ~15 s, enough
    epochs that it says words (after two it says nothing, which would make text comparisons empty)."""
    import seehear
    from seehear.data.synth import make_spoken_sentences

    root = tmp_path_factory.mktemp("serve-asr")
    data = make_spoken_sentences(root / "sent", train=60, test=12, workers=1)
    out = root / "asr"
    seehear.train(str(data), str(out), overrides=["task=transcribe", "model.name=lstm_ctc_stream",
                                                  "model.kwargs={hidden: 96, layers: 1}", "train.epochs=50",
                                                  "train.lr=5e-3", "train.threads=1", "data.workers=1",
                                                  "transcribe.decoder=greedy"],
                  progress=False)
    return out, data


@pytest.fixture(scope="session")
def both_server(image_run, stream_run):
    """One server with the image run and the streaming run (the stream tests and the page share it)."""
    with serving([image_run[0], stream_run[0]]) as s:
        yield s

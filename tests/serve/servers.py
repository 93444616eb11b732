"""A real server for the tests: `python -m seehear serve` as a uvicorn subprocess on a free loopback port.
(A module of its own, not conftest: several test folders have a conftest, and `from conftest import` would get
whichever was imported first.)"""
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
    return multipart_fields({field: (data, filename)})


def multipart_fields(parts: dict) -> tuple[bytes, dict]:
    """A multipart body of file fields: {field name: (bytes, filename)}."""
    b = "seehearboundary7MA4YWxkTrZu0gW"
    body = b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                    for field, (data, filename) in parts.items()) + f"--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}

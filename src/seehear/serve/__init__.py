"""Serve trained run folders over HTTP and WebSocket, with a web page at /.

    seehear serve runs/A runs/B [--host 127.0.0.1] [--port 8000] [--engine onnx|torch] [--api-key-file F]

    from seehear.serve import run, create_app
    run(["runs/A"], port=8000)                    # blocks; Ctrl-C stops it
    app = create_app(["runs/A"])                  # a FastAPI app, for your own ASGI server
"""
from __future__ import annotations

import sys
from pathlib import Path

from seehear.errors import ConfigError
from seehear.serve.limits import Limits


def create_app(runs, engine: str = "onnx", api_key: str | None = None, limits: Limits | None = None, **kw):
    from seehear.serve.app import create_app as _create

    return _create(runs, engine=engine, api_key=api_key, limits=limits, **kw)


def read_api_key(path) -> str:
    """The key in a file (surrounding whitespace stripped); a file that holds none is an error, not an open door."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"API key file {p} does not exist")
    key = p.read_text(encoding="utf-8", errors="replace").strip()
    if not key:
        raise ConfigError(f"API key file {p} is empty")
    return key


def run(runs, *, host: str = "127.0.0.1", port: int = 8000, engine: str = "onnx", api_key: str | None = None,
        limits: Limits | None = None, log_level: str = "warning", max_connections: int = 1024, **kw) -> None:
    """Serve `runs` until interrupted. Binds loopback only unless another host is asked for."""
    import uvicorn

    app = create_app(runs, engine=engine, api_key=api_key, limits=limits, **kw)  # bad run folders fail here
    print(f"seehear: serving {', '.join(map(str, runs))} on http://{host}:{port}/ (Ctrl-C stops)", file=sys.stderr,
          flush=True)
    # limit_concurrency: beyond that many open connections and tasks uvicorn answers 503 itself, so a flood of
    # idle connections cannot grow memory without bound
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="websockets-sansio", access_log=False,
                timeout_keep_alive=30, limit_concurrency=max_connections)


__all__ = ["Limits", "create_app", "read_api_key", "run"]

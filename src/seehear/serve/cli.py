"""`seehear serve RUN...`: argument parsing only; the work is in seehear.serve."""
from __future__ import annotations

import sys


def add_commands(sub) -> None:
    p = sub.add_parser("serve", help="serve runs over HTTP and WebSocket, with a web page at / (loopback only "
                                     "unless --host says otherwise)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders; each is served under its folder's name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", choices=["onnx", "torch"], default="onnx",
                   help="for classification runs: ONNX Runtime (the run is exported once if needed) or PyTorch")
    p.add_argument("--api-key-file", help="require this key (header X-API-Key, or ?key= on the WebSocket)")
    p.add_argument("--max-upload-mb", type=float, default=10.0)
    p.add_argument("--max-queue", type=int, default=256, help="requests waiting per model before 503")
    p.add_argument("--max-batch", type=int, default=32, help="items per model call (1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a batch waits for more items")
    p.add_argument("--workers", type=int, default=2, help="batches in flight per model (threads)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a request may wait for its answer")
    p.add_argument("--threads", type=int, help="threads per model call (default: the cores available less one, "
                                                      "shared among the workers)")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(a) -> int:
    from seehear.serve import Limits, read_api_key, run

    limits = Limits(max_upload_bytes=int(a.max_upload_mb * 1024 * 1024), max_queue=a.max_queue,
                    max_batch=a.max_batch, max_wait_ms=a.max_wait_ms, workers=a.workers,
                    request_timeout_s=a.timeout)
    key = read_api_key(a.api_key_file) if a.api_key_file else None
    if a.host not in ("127.0.0.1", "localhost", "::1") and not key:
        print(f"seehear: serving on {a.host} without an API key: anyone who can reach it can use it",
              file=sys.stderr)
    run(a.runs, host=a.host, port=a.port, engine=a.engine, api_key=key, limits=limits, threads=a.threads,
        log_level=a.log_level)
    return 0

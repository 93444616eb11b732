"""The HTTP app: routes only. Limits and decoding: limits.py; batching: batching.py; metrics: metrics.py;
models: models.py; the WebSocket protocol: stream.py."""
from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from seehear.errors import ConfigError
from seehear.serve.batching import Batcher
from seehear.serve.limits import HTTPError, Limits, read_fields, read_upload
from seehear.serve.metrics import Metrics, MetricsMiddleware
from seehear.serve.models import load_model, threads_for_machine
from seehear.serve import stream as stream_protocol
from seehear.serve.stream import stream

STATIC = Path(__file__).parent / "static"
UPLOAD = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {  # image/audio: audio-image models
        name: {"type": "string", "format": "binary"} for name in ("file", "image", "audio")}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def create_app(runs, engine: str = "onnx", api_key: str | None = None, limits: Limits | None = None,
               threads: int | None = None) -> FastAPI:
    from PIL import Image

    limits, metrics = limits or Limits(), Metrics()
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels  # Pillow's own bomb guard, at our limit (ours checks first)
    threads = threads or threads_for_machine(limits.workers)
    served = {}
    for run in runs:
        m = load_model(run, engine, limits, threads)
        if m.run_dir.name in served:
            raise ConfigError(f"two runs are named {m.run_dir.name}: serve folders with different names")
        served[m.run_dir.name] = m
    batchers = {n: Batcher(n, m.call, max_batch=limits.max_batch, max_wait_ms=limits.max_wait_ms,
                           max_queue=limits.max_queue, workers=limits.workers, metrics=metrics)
                for n, m in served.items()}
    streams: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(app):
        for b in batchers.values():
            b.start()
        yield
        for b in batchers.values():
            await b.stop()

    app = FastAPI(title="seehear", lifespan=lifespan, description=stream_protocol.__doc__.split("\n", 1)[1])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.limits, app.state.metrics, app.state.served = limits, metrics, served

    @app.exception_handler(HTTPError)
    async def refused(request, e: HTTPError):
        return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def bug(request, e):  # a bug in seehear: logged by uvicorn, answered without a traceback
        return JSONResponse({"error": f"internal error ({type(e).__name__})"}, status_code=500)

    def model(name: str, request: Request | None = None):
        if api_key and request is not None:
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
                "Bearer ")
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                raise HTTPError(401, "missing or wrong API key (send header X-API-Key or Authorization: Bearer)")
        if name not in served:
            raise HTTPError(404, f"no model named {name!r}; GET /v1/models lists them")
        return served[name]

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.get("/readyz")
    async def readyz():
        ready = all(b.running for b in batchers.values())
        return JSONResponse({"ready": ready, "models": list(served)}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        return {"models": [{"name": n, **m.describe(), "auth": bool(api_key)} for n, m in served.items()]}

    @app.post("/v1/models/{name}/predict", openapi_extra=UPLOAD)
    async def predict(name: str, request: Request, top_k: int = 5):
        m = model(name, request)
        if m.task != "classify":
            raise HTTPError(400, f"{name} is a {m.task} model: POST to /v1/models/{name}/transcribe")
        fields = getattr(m, "fields", None)  # a two-input model: multipart fields image and/or audio
        upload = await (read_fields(request, limits, fields) if fields else read_upload(request, limits))
        p = await batchers[name].submit(upload, limits.request_timeout_s)
        top = m.top(p, top_k)  # a JSONResponse as is: no response-model encoding on the hot path
        return JSONResponse({"model": name, "label": top[0]["label"], "probability": top[0]["probability"],
                             "top": top, **({"inputs": list(upload)} if fields else {})})

    @app.post("/v1/models/{name}/transcribe", openapi_extra=UPLOAD)
    async def transcribe(name: str, request: Request):
        from seehear.speech.formats import to_json, to_srt

        m = model(name, request)
        if m.task != "transcribe":
            raise HTTPError(400, f"{name} is a {m.task} model: POST to /v1/models/{name}/predict")
        seg = await batchers[name].submit(await read_upload(request, limits), limits.request_timeout_s)
        doc = to_json("upload", [seg] if seg["text"] else [])
        return {"model": name, "text": doc["text"], "segments": doc["segments"], "seconds": seg["end"],
                "srt": to_srt([seg] if seg["text"] else [])}

    @app.websocket("/v1/models/{name}/stream")
    async def live(ws: WebSocket, name: str):
        if name not in served:
            await ws.close(code=1008, reason=f"no model named {name}")
            return
        await stream(ws, served[name], limits, metrics, api_key, streams)

    return app

"""WS /v1/models/{name}/stream: live transcription of PCM sent in chunks.

Protocol (documented in the OpenAPI description too):
  connect    ws://HOST/v1/models/NAME/stream?dtype=f32|s16[&key=API_KEY]
  server  →  {"event": "ready", "sample_rate": 16000, "dtype": "f32", "channels": 1}
  client  →  binary messages: mono little-endian PCM at that sample rate (float32 for f32, int16 for s16),
             any size up to max_chunk_bytes (100-200 ms per message suits)
  server  →  {"partial": "text of the open utterance", "final": [{"start", "end", "text", "words"}...]} per chunk
  client  →  text message "end" (or {"event": "end"}): the server flushes, sends the last update with
             "event": "final", and closes. A bad message gets {"error": "..."} and close code 1003 / 1008 / 1009.
"""
from __future__ import annotations

import asyncio
import hmac

from starlette.websockets import WebSocket, WebSocketDisconnect

from seehear.serve.limits import HTTPError, decode_pcm


async def stream(ws: WebSocket, served, limits, metrics, api_key: str | None, open_streams: dict) -> None:
    name = served.run_dir.name
    if api_key and not hmac.compare_digest(ws.query_params.get("key", "").encode(), api_key.encode()):
        await ws.close(code=1008, reason="missing or wrong API key")
        return
    dtype = ws.query_params.get("dtype", "f32")
    if not getattr(served, "streaming", False) or dtype not in ("f32", "s16"):
        await ws.accept()
        why = (f"model {name} cannot stream (a streaming transcription run is needed)" if dtype in ("f32", "s16")
               else f"dtype {dtype!r} is not f32 or s16")
        await ws.send_json({"error": why})
        await ws.close(code=1003)
        return
    if open_streams.get(name, 0) >= limits.max_streams:
        await ws.accept()
        await ws.send_json({"error": f"model {name} has {limits.max_streams} streams open; retry shortly"})
        await ws.close(code=1013)  # try again later
        return
    from seehear.speech.streaming import StreamingTranscriber

    open_streams[name] = open_streams.get(name, 0) + 1
    metrics.streams.labels(name).inc()
    try:
        await ws.accept()
        s = StreamingTranscriber(served.run_dir, loaded=served.loaded)
        sr = served.sample_rate
        await ws.send_json({"event": "ready", "sample_rate": sr, "dtype": dtype, "channels": 1})
        await _session(ws, s, sr, dtype, limits)
    except WebSocketDisconnect:
        pass
    except asyncio.TimeoutError:  # a client that stops sending must not hold a stream slot for ever
        await _refuse(ws, 1008, "no message for too long; the stream is closed")
    finally:
        open_streams[name] -= 1
        metrics.streams.labels(name).dec()


async def _session(ws: WebSocket, s, sr: int, dtype: str, limits) -> None:
    received = 0
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout=max(30.0, limits.request_timeout_s))
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is not None:
            if msg["text"].strip() in ("end", '{"event": "end"}', '{"event":"end"}'):
                out = await asyncio.to_thread(s.finish)
                await ws.send_json({**out, "event": "final"})
                await ws.close()
                return
            await _refuse(ws, 1003, "text messages other than 'end' are not understood; send PCM as binary")
            return
        data = msg.get("bytes") or b""
        if len(data) > limits.max_chunk_bytes:
            await _refuse(ws, 1009, f"chunk of {len(data):,} bytes is over {limits.max_chunk_bytes:,}")
            return
        try:
            x = decode_pcm(data, dtype)
        except HTTPError as e:
            await _refuse(ws, 1003, e.message)
            return
        received += len(x)
        if received > limits.max_stream_seconds * sr:
            await _refuse(ws, 1009, f"stream is over {limits.max_stream_seconds:g} s of audio; open a new one")
            return
        out = await asyncio.to_thread(s.feed, x)  # the model step runs off the event loop
        await ws.send_json(out)


async def _refuse(ws: WebSocket, code: int, message: str) -> None:
    await ws.send_json({"error": message})
    await ws.close(code=code)

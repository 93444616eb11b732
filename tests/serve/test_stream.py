"""Transcription over HTTP and live transcription over a real WebSocket, on a small streaming run: the server's
text equals what the same run gives in-process."""
from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
import soundfile as sf
import websockets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def asr(both_server, stream_run):
    return both_server, *stream_run


def resampled(path, sr=16000) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    x, rate = sf.read(path, dtype="float32")
    return AF.resample(torch.from_numpy(x), rate, sr).numpy()


def test_transcribe_matches_in_process(asr):
    from seehear.tasks.transcribe import load

    s, run, data = asr
    m = next(m for m in s.get("/v1/models")[1]["models"] if m["name"] == run.name)
    assert m["task"] == "transcribe" and m["streaming"] and m["stream_format"]["sample_rate"] == 16000
    t = load(run)
    said = []
    for wav in sorted((data / "test").glob("*.wav"))[:3]:
        status, r = s.post(f"/v1/models/{run.name}/transcribe", wav.read_bytes())
        assert status == 200
        want = t.recognize([__import__("torch").from_numpy(resampled(wav))])[0].text
        assert r["text"] == want and r["seconds"] > 0.3
        said.append(want)
        assert (r["srt"] == "" and want == "") or r["srt"].startswith("1\n00:00:00,")
    assert any(said)  # the comparison is not between empty texts
    assert s.post(f"/v1/models/{run.name}/predict", wav.read_bytes())[0] == 400
    assert s.post(f"/v1/models/{run.name}/transcribe", b"RIFF....WAVEnonsense")[0] == 422
    buf = io.BytesIO()
    sf.write(buf, np.full(16000, np.nan, np.float32), 16000, format="WAV", subtype="FLOAT")
    status, r = s.post(f"/v1/models/{run.name}/transcribe", buf.getvalue())  # NaN audio: an answer, not a 500
    assert status == 200 and isinstance(r["text"], str)


async def _stream(url: str, x: np.ndarray, dtype: str, step: int = 2560):
    async with websockets.connect(url) as ws:
        hello = json.loads(await ws.recv())
        assert hello == {"event": "ready", "sample_rate": 16000, "dtype": dtype, "channels": 1}
        finals, partials = [], []
        for i in range(0, len(x), step):
            piece = x[i:i + step]
            await ws.send(piece.astype("<f4").tobytes() if dtype == "f32"
                          else np.clip(piece * 32767, -32768, 32767).astype("<i2").tobytes())
            u = json.loads(await ws.recv())
            finals += u["final"]
            partials.append(u["partial"])
        await ws.send("end")
        last = json.loads(await ws.recv())
        assert last["event"] == "final"
        return finals + last["final"], partials


def test_websocket_stream_equals_in_process_streaming(asr):
    from seehear.speech.streaming import StreamingTranscriber

    s, run, data = asr
    wav = sorted((data / "test").glob("*.wav"))[1]
    x = resampled(wav)
    local = StreamingTranscriber(run)
    want = []
    for i in range(0, len(x), 2560):
        want += local.feed(x[i:i + 2560])["final"]
    want += local.finish()["final"]
    url = s.url.replace("http", "ws") + f"/v1/models/{run.name}/stream"
    finals, partials = asyncio.run(_stream(url + "?dtype=f32", x, "f32"))
    assert [f["text"] for f in finals] == [f["text"] for f in want] and want
    assert any(partials)  # text shows while audio is still arriving
    finals16, _ = asyncio.run(_stream(url + "?dtype=s16", x, "s16"))
    assert " ".join(f["text"] for f in finals16).split()[:1] == " ".join(f["text"] for f in want).split()[:1]
    assert s.get("/healthz")[0] == 200


def test_websocket_refuses_bad_input(asr):
    s, run, _ = asr
    url = s.url.replace("http", "ws") + f"/v1/models/{run.name}/stream"

    async def go(query: str, send):
        async with websockets.connect(url + query) as ws:
            first = json.loads(await ws.recv())
            if "error" in first:
                return first, ws.close_code if ws.close_code else (await ws.wait_closed(), ws.close_code)[1]
            await ws.send(send)
            msg = json.loads(await ws.recv())
            await ws.wait_closed()
            return msg, ws.close_code

    msg, code = asyncio.run(go("?dtype=f64", b""))
    assert "dtype" in msg["error"] and code == 1003
    msg, code = asyncio.run(go("?dtype=f32", b"\x00" * 7))  # not whole float32 samples
    assert "whole number" in msg["error"] and code == 1003
    msg, code = asyncio.run(go("?dtype=f32", b"\x00" * (1024 * 1024)))
    assert "over" in msg["error"] and code == 1009
    msg, code = asyncio.run(go("?dtype=f32", "hello"))
    assert "not understood" in msg["error"] and code == 1003


def test_websocket_needs_the_api_key_when_one_is_set(stream_run, tmp_path):
    from servers import serving

    run = stream_run[0]
    key = tmp_path / "key"
    key.write_text("k3y")
    with serving([run], "--api-key-file", str(key)) as s:
        url = s.url.replace("http", "ws") + f"/v1/models/{run.name}/stream?dtype=s16"

        async def hello(query: str):
            async with websockets.connect(url + query) as ws:
                return json.loads(await ws.recv())

        with pytest.raises(websockets.exceptions.InvalidStatus):  # refused in the handshake
            asyncio.run(hello("&key=wrong"))
        assert asyncio.run(hello("&key=k3y"))["event"] == "ready"
        assert s.post(f"/v1/models/{run.name}/transcribe", b"RIFF")[0] == 401

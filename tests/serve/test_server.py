"""The server as a real uvicorn process on loopback, over real HTTP: predictions, health, metrics, and every kind
of bad upload answered with a 4xx JSON error (never a 5xx), a full queue with 503 + Retry-After, the API key."""
from __future__ import annotations

import http.client
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from servers import multipart, serving

pytestmark = pytest.mark.slow


def png(w: int, h: int, seed: int = 0, noise: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if noise else np.full((h, w, 3), 200, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with a few hundred bytes of deflated zeros: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    idat = zlib.compress(b"\x00" * 100_000, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def wav(seconds: float = 0.5, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(int(seconds * sr)) * 0.05)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(image_run):
    with serving([image_run[0]], "--max-upload-mb", "1", "--timeout", "3") as s:
        yield s


def test_predict_multipart_and_raw_agree_and_are_right(server, image_run):
    run, data = image_run
    s, listing = server.get("/v1/models")
    (m,) = listing["models"]
    assert s == 200 and m["name"] == run.name and m["engine"] == "onnx" and m["input"]["size"] == 32
    files = [f for label in m["labels"] for f in sorted((data / label).glob("*.png"))[:4]]
    right = 0
    for f in files:
        body, headers = multipart(f.read_bytes(), filename="anything.txt")  # the name is not trusted, the bytes are
        s1, a = server.post(f"/v1/models/{run.name}/predict?top_k=3", body, headers=headers)
        s2, b = server.post(f"/v1/models/{run.name}/predict?top_k=3", f.read_bytes())
        assert s1 == s2 == 200 and a == b
        assert len(a["top"]) == 3 and abs(sum(t["probability"] for t in a["top"]) - 1) < 2e-3
        assert a["label"] == a["top"][0]["label"] and a["top"][0]["probability"] >= a["top"][1]["probability"]
        right += a["label"] == f.parent.name
    assert right >= 0.7 * len(files)


def test_torch_engine_gives_the_same_answers(server, image_run):
    """--engine torch (load_run(run).model) against the server's ONNX Runtime answers, on the same bytes."""
    from seehear.serve.limits import Limits
    from seehear.serve.models import Classifier

    run, data = image_run
    torch_model = Classifier(run, "torch", Limits(), threads=1)
    for f in sorted((data / "square").glob("*.png"))[:3]:
        _, a = server.post(f"/v1/models/{run.name}/predict?top_k=3", f.read_bytes())
        (p,) = torch_model.call([f.read_bytes()])
        b = torch_model.top(p, 3)
        assert a["top"][0]["label"] == b[0]["label"]
        assert all(abs(x["probability"] - y["probability"]) < 2e-3 for x, y in zip(a["top"], b))


def test_health_ready_metrics_docs(server, image_run):
    assert server.get("/healthz") == (200, {"ok": True})
    s, r = server.get("/readyz")
    assert s == 200 and r["ready"] is True and r["models"] == [image_run[0].name]
    server.post(f"/v1/models/{image_run[0].name}/predict", b"not an image")
    s, text = server.get("/metrics")
    text = text.decode()
    assert s == 200
    assert 'seehear_requests_total{method="POST",route="/v1/models/{name}/predict",status="415"}' in text
    assert "seehear_batch_size_count" in text and "seehear_request_seconds_bucket" in text
    assert 'seehear_errors_total{route="/v1/models/{name}/predict",status="415"}' in text
    s, spec = server.get("/openapi.json")
    assert s == 200 and "/v1/models/{name}/predict" in spec["paths"] and server.get("/docs")[0] == 200


@pytest.mark.parametrize("body,status,words", [
    (b"", 400, "empty"),
    (b"just some text, not an image", 415, "not a recognised image"),
    (b"%PDF-1.4 a pdf", 415, "not a recognised image"),
    ("wav", 415, "upload is audio"),
    ("truncated", 422, ""),
    ("bomb", 413, "pixels"),
    ("big-dims", 413, "pixels"),
])
def test_bad_uploads_get_4xx_json(server, image_run, body, status, words):
    if body == "wav":
        body = wav()
    elif body == "truncated":
        body = png(32, 32, noise=True)[:200]
    elif body == "bomb":
        body = png_header_only(100_000, 100_000)
    elif body == "big-dims":
        body = png_header_only(8000, 6000)  # 48 M pixels: over the default 40 M, under Pillow's own error at 2x
    s, r = server.post(f"/v1/models/{image_run[0].name}/predict", body)
    assert s == status and isinstance(r, dict) and words in r["error"] and "Traceback" not in r["error"]
    assert server.get("/healthz")[0] == 200


def send_big(port: int, path: str, body: bytes, headers: dict, chunked: bool = False) -> tuple[int, bytes]:
    """POST a large body; the server may answer and close before it is all sent (a broken pipe here is fine)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest("POST", path)
    for k, v in {**headers, **({"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": len(body)})}.items():
        c.putheader(k, str(v))
    c.endheaders()
    try:
        for i in range(0, len(body), 65536):
            piece = body[i:i + 65536]
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            c.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out


def test_oversize_upload_413_by_length_and_while_streaming(server, image_run):
    big = png(1200, 1200, noise=True)  # ~4 MB, over the 1 MB limit
    assert len(big) > 1024 * 1024
    path = f"/v1/models/{image_run[0].name}/predict"
    s, r = send_big(server.port, path, big, {})
    assert s == 413 and b"over the limit" in r
    s, r = send_big(server.port, path, big, {}, chunked=True)  # no Content-Length: refused while reading
    assert s == 413 and b"over the limit" in r
    body, headers = multipart(big)
    assert send_big(server.port, path, body, headers)[0] == 413
    assert server.post(path, png(32, 32))[0] == 200


def test_bad_routes_are_json_errors(server, image_run):
    s, r = server.post("/v1/models/nope/predict", png(8, 8))
    assert s == 404 and "no model named" in r["error"]
    s, r = server.post(f"/v1/models/{image_run[0].name}/transcribe", wav())
    assert s == 400 and "predict" in r["error"]
    s, r = server.post(f"/v1/models/{image_run[0].name}/predict?top_k=many", png(8, 8))
    assert s == 422
    body, headers = multipart(png(8, 8), field="notfile")
    assert server.post(f"/v1/models/{image_run[0].name}/predict", body, headers=headers)[0] == 200  # first file
    s, r = server.post(f"/v1/models/{image_run[0].name}/predict", b"--x\r\n\r\n",
                       headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert s == 400


@pytest.fixture(scope="module")
def strict(image_run, tmp_path_factory):
    """A server with an API key, a queue of one and no batching."""
    key = tmp_path_factory.mktemp("key") / "key"
    key.write_text("s3cret-key\n")
    with serving([image_run[0]], "--api-key-file", str(key), "--max-queue", "1", "--max-batch", "1") as s:
        yield s


def test_full_queue_answers_503_with_retry_after(strict, image_run):
    run = image_run[0]
    slow = png(2500, 2500)  # a large flat image: cheap to send, tens of ms to decode and resize
    key = {"X-API-Key": "s3cret-key"}
    with ThreadPoolExecutor(24) as pool:
        got = list(pool.map(lambda _: strict.request("POST", f"/v1/models/{run.name}/predict", slow, key),
                            range(48)))
    codes = [g[0] for g in got]
    assert set(codes) <= {200, 503} and 503 in codes and 200 in codes
    busy = next(g for g in got if g[0] == 503)
    assert busy[1].get("retry-after") or busy[1].get("Retry-After")
    assert "busy" in busy[2]["error"]
    assert strict.post(f"/v1/models/{run.name}/predict", png(32, 32), headers=key)[0] == 200  # still answers


def test_api_key_required_and_compared(strict, image_run, tmp_path, capsys):
    from seehear.cli import main

    path = f"/v1/models/{image_run[0].name}/predict"
    assert strict.post(path, png(32, 32))[0] == 401
    assert strict.post(path, png(32, 32), headers={"X-API-Key": "s3cret-kex"})[0] == 401
    assert strict.post(path, png(32, 32), headers={"X-API-Key": "s3cret-key"})[0] == 200
    assert strict.post(path, png(32, 32), headers={"Authorization": "Bearer s3cret-key"})[0] == 200
    assert strict.get("/healthz")[0] == 200  # probes need no key
    assert strict.get("/v1/models")[0] == 200 and strict.get("/v1/models")[1]["models"][0]["auth"] is True
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    assert main(["serve", str(image_run[0]), "--api-key-file", str(empty)]) == 2  # an empty key is no open door
    assert "is empty" in capsys.readouterr().err


def test_a_body_that_never_arrives_is_408(server, image_run):
    """A client that announces a body and sends only part of it is cut off after the request timeout (3 s)."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"POST /v1/models/{image_run[0].name}/predict HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: 5000\r\n\r\n".encode() + b"\x89PNG\r\n\x1a\n")
        answer = b""
        while b"did not arrive" not in answer:  # headers and body may come in separate packets
            piece = sock.recv(4096)
            if not piece:
                break
            answer += piece
        answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 408") and "did not arrive" in answer
    assert server.get("/healthz")[0] == 200

"""An audio-image run served by a real uvicorn process: multipart `image` and/or `audio` fields answered as
seehear.predict answers the same files (either input alone too), mixed requests batched together, and bad uploads
in either field refused with 4xx JSON."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from servers import multipart_fields, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A small fused run (a few seconds). Trained at fp32 so that seehear.predict is fp32 like the ONNX graph."""
    import seehear
    from seehear.data.synth import make_pairs

    root = tmp_path_factory.mktemp("serve-pairs")
    manifest = make_pairs(root / "pairs", classes=3, per_class=16, size=16, seconds=0.5, seed=1)
    out = root / "av"
    seehear.train(str(manifest), str(out), overrides=[
        "modality=audio-image", "train.epochs=4", "train.threads=1", "data.workers=1", "train.batch_size=16",
        "image.size=16", "audio.clip_seconds=0.5", "train.precision=fp32"], progress=False)
    return out, manifest.parent


@pytest.fixture(scope="module")
def server(pair_run):
    with serving([pair_run[0]], "--max-upload-mb", "0.1", "--max-wait-ms", "30", "--timeout", "20") as s:
        yield s


def files(data, stem: str) -> tuple:
    return data / "images" / f"{stem}.png", data / "audio" / f"{stem}.wav"


def ask(server, name: str, image=None, audio=None) -> tuple[int, dict]:
    parts = {k: (f.read_bytes(), f.name) for k, f in (("image", image), ("audio", audio)) if f is not None}
    body, headers = multipart_fields(parts)
    return server.post(f"/v1/models/{name}/predict?top_k=3", body, headers=headers)


def as_dict(top: list[dict]) -> dict:
    return {t["label"]: t["probability"] for t in top}


def test_models_lists_both_inputs(server, pair_run):
    s, listing = server.get("/v1/models")
    (m,) = listing["models"]
    assert s == 200 and m["modality"] == "audio-image" and m["fields"] == ["image", "audio"]
    assert m["input"]["image"]["size"] == 16 and m["input"]["audio"]["num_samples"] == 8000
    assert m["engine"] == "onnx" and (pair_run[0] / "model.onnx").is_file()


@pytest.mark.parametrize("given", [("image", "audio"), ("image",), ("audio",)])
def test_answers_match_predict(server, pair_run, given):
    import seehear

    run, data = pair_run
    for stem in ("circle_000", "square_003", "triangle_005"):
        image, audio = files(data, stem)
        kw = {"image": image if "image" in given else None, "audio": audio if "audio" in given else None}
        s, got = ask(server, run.name, **kw)
        (want,) = seehear.predict(run, **kw)
        assert s == 200 and got["inputs"] == want["inputs"] == list(given)
        assert got["label"] == want["label"], (stem, given, got["top"], want["top"])
        ref = as_dict(want["top"])
        assert all(abs(p - ref[label]) < 2e-3 for label, p in as_dict(got["top"]).items())


def test_raw_body_is_one_input_by_its_content(server, pair_run):
    run, data = pair_run
    image, audio = files(data, "square_001")
    for f, field in ((image, "image"), (audio, "audio")):
        s1, raw = server.post(f"/v1/models/{run.name}/predict?top_k=3", f.read_bytes())
        s2, named = ask(server, run.name, **{field: f})
        assert s1 == s2 == 200 and raw == named and raw["inputs"] == [field]


def test_mixed_requests_at_once_answer_as_alone(server, pair_run):
    """Image-only, audio-only and paired requests sent together share batches (30 ms wait) and get the answers
    each gets alone: a missing input in one row does not touch the others."""
    run, data = pair_run
    asks = [dict(image=files(data, s)[0] if i % 3 != 1 else None, audio=files(data, s)[1] if i % 3 != 0 else None)
            for i, s in enumerate(["circle_002", "square_002", "triangle_002", "circle_004", "square_004",
                                   "triangle_004"])]
    alone = [ask(server, run.name, **kw) for kw in asks]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda kw: ask(server, run.name, **kw), asks))
    assert [s for s, _ in together] == [200] * 6
    for (_, a), (_, b) in zip(alone, together):
        assert a["label"] == b["label"] and a["inputs"] == b["inputs"]
        assert all(abs(p - as_dict(a["top"])[k]) < 2e-3 for k, p in as_dict(b["top"]).items())


def test_bad_uploads_get_4xx_json(server, pair_run):
    run, data = pair_run
    image, audio = files(data, "circle_001")
    png, wav = image.read_bytes(), audio.read_bytes()
    cases = [  # (multipart parts or a raw body, status, words in the error)
        ({"image": (wav, "a.png")}, 415, "field 'image'"),  # wrong kind in a field
        ({"audio": (png, "a.wav")}, 415, "field 'audio'"),
        ({"image": (png, "a.png"), "audio": (png, "b.wav")}, 415, "upload is image"),  # one bad field: refused
        ({"image": (png[:len(png) // 2], "a.png")}, 422, "field 'image'"),  # truncated
        ({"audio": (wav[:30], "a.wav")}, 422, "field 'audio'"),  # cut inside its header
        ({"picture": (png, "a.png")}, 400, "no image or audio field"),  # no field at all
        ({"image": (b"", "a.png")}, 400, "empty"),
        ({"audio": (b"\x00" * 120_000, "a.wav")}, 413, "over the limit"),  # over --max-upload-mb 0.1
        (b"", 400, "empty"),
        (b"neither an image nor a recording", 415, "not a recognised image or audio"),
    ]
    for parts, status, words in cases:
        body, headers = multipart_fields(parts) if isinstance(parts, dict) else (parts, {})
        s, r = server.post(f"/v1/models/{run.name}/predict", body, headers=headers)
        assert s == status and isinstance(r, dict) and words in r["error"], (parts if not isinstance(parts, dict)
                                                                             else list(parts), s, r)
    assert ask(server, run.name, image=image, audio=audio)[0] == 200  # and the server still answers


def test_torch_engine_agrees_with_onnx(server, pair_run):
    from seehear.serve.limits import Limits
    from seehear.serve.models import PairClassifier

    run, data = pair_run
    model = PairClassifier(run, "torch", Limits(), threads=1)
    image, audio = files(data, "triangle_001")
    items = [{"image": image.read_bytes(), "audio": audio.read_bytes()}, {"image": image.read_bytes()},
             {"audio": audio.read_bytes()}]
    for item, p in zip(items, model.call(items)):
        s, got = ask(server, run.name, **{k: f for k, f in (("image", image), ("audio", audio)) if k in item})
        assert s == 200 and as_dict(got["top"]) == pytest.approx(as_dict(model.top(p, 3)), abs=2e-3)


def test_page_sends_the_image_then_the_pair(server, pair_run):
    """The web page (chromium): an image picked alone is asked image-only; a recording picked after it is sent with
    that image, and the page shows what the API answers for the pair."""
    import shutil

    pytest.importorskip("playwright", reason="pip install playwright (in requirements.txt)")
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is needed (make sysdeps installs it)")
    from playwright.sync_api import sync_playwright

    run, data = pair_run
    image, audio = files(data, "square_005")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            assert "image, a recording or both" in page.inner_text("#about") and page.is_visible("#record")
            for picked, given in ((image, dict(image=image)), (audio, dict(image=image, audio=audio))):
                page.evaluate("document.getElementById('top').innerHTML = ''")
                page.set_input_files("#file", str(picked))
                page.wait_for_selector("#top li", timeout=15000)
                shown = [t.split("\n")[-1] for t in page.locator("#top li").all_inner_texts()]
                body, headers = multipart_fields({k: (f.read_bytes(), f.name) for k, f in given.items()})
                _, api = server.post(f"/v1/models/{run.name}/predict?top_k=5", body, headers=headers)
                assert page.inner_text("#top li .label") == api["label"]
                assert shown == [f"{100 * t['probability']:.1f}%" for t in api["top"]]
            assert not errors
        finally:
            browser.close()

"""The page at / in a real browser (Debian's chromium, driven by Playwright): pick an image and see its label;
play a recorded sentence as the microphone and see the live transcript appear."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def page_server(both_server, stream_run, tmp_path_factory):
    """One server with both runs, and chromium whose microphone plays test sentences."""
    pytest.importorskip("playwright", reason="pip install playwright (in requirements.txt)")
    if not shutil.which("chromium"):
        pytest.fail("Debian's chromium is needed (make sysdeps installs it)")
    import torch
    import torchaudio.functional as AF
    from playwright.sync_api import sync_playwright

    parts = []
    for wav in sorted((stream_run[1] / "test").glob("*.wav"))[:3]:
        x, sr = sf.read(wav, dtype="float32")
        parts += [AF.resample(torch.from_numpy(x), sr, 16000).numpy(), np.zeros(8000, np.float32)]
    mic = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(mic, np.concatenate(parts), 16000, subtype="PCM_16")
    srv = both_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"])
        try:
            yield srv, browser
        finally:
            browser.close()


def test_pick_an_image_and_see_its_label(page_server, image_run):
    srv, browser = page_server
    run, data = image_run
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url + "/")
    page.select_option("#model", run.name)
    f = sorted((data / "triangle").glob("*.png"))[3]
    page.set_input_files("#file", str(f))
    page.wait_for_selector("#top li", timeout=15000)
    shown = page.inner_text("#top li .label")
    _, api = srv.post(f"/v1/models/{run.name}/predict?top_k=5", f.read_bytes())
    assert shown == api["label"]
    assert page.locator("#top li").count() == 3 and "ms" in page.inner_text("#status")
    assert not errors
    page.close()


def test_live_transcript_from_the_microphone(page_server, stream_run):
    srv, browser = page_server
    run = stream_run[0]
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url + "/")
    page.select_option("#model", run.name)
    assert page.is_visible("#live")
    page.click("#live")
    page.wait_for_function("document.getElementById('final').textContent.trim().length + "
                           "document.getElementById('partial').textContent.trim().length > 0", timeout=30000)
    page.click("#live")  # stop: the server flushes and sends the last words
    page.wait_for_function("document.getElementById('final').textContent.trim().length > 0", timeout=15000)
    words = page.inner_text("#final").split()
    assert words and not errors
    page.close()

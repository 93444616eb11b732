"""Speech to text end to end on espeak-ng sentences: train from the CLI and from Python, transcribe files (text,
JSON, SRT), long files cut on silence, streaming equal to offline, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from seehear.cli import main

FAST = ["train.epochs=10", "train.threads=1", "data.workers=1", "model.name=conformer_ctc_tiny", "train.lr=3e-3",
        "transcribe.decoder=greedy"]
# A model that really learns the 10 digit words (about a minute): greedy WER ~0.4, beam search with the LM ~0.06
LEARNS = ["train.epochs=40", "train.threads=1", "data.workers=1", "model.name=bilstm_ctc",
          "model.kwargs={hidden: 96, layers: 2}", "train.lr=3e-3"]


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    from seehear.data.synth import make_spoken_sentences

    return make_spoken_sentences(tmp_path_factory.mktemp("sent") / "sent", train=60, test=12, workers=1)


@pytest.fixture(scope="module")
def run(sentences, tmp_path_factory):
    import seehear

    out = tmp_path_factory.mktemp("runs") / "asr"
    res = seehear.train(str(sentences), str(out), task="transcribe", overrides=LEARNS, progress=False)
    return out, res


@pytest.mark.slow
def test_training_writes_a_transcription_run(run):
    out, res = run
    for f in ("config.yaml", "meta.json", "model.safetensors", "units.json", "lm.arpa", "metrics.json",
              "split.json", "logs/metrics.csv"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"] == "transcribe" and meta["status"] == "done" and meta["data"]["counts"]["test"] == 12
    m = res.metrics
    assert m["decoder"] == "beam" and m["utterances"] == 12 and set(m["per_group"]) == {"en", "en-us", "en-f3"}
    assert m["wer"] <= 0.3 and m["cer"] <= 0.3, m  # the default path (beam search with its LM) is usable
    page = (out / "report.html").read_text()
    assert ">WER<" in page and f"{m['wer']:.1%}" in page and "No metrics.json" not in page
    # it learned something: the CTC loss fell well below where it started
    import csv

    rows = [r for r in csv.DictReader((out / "logs" / "metrics.csv").open()) if r.get("train_loss")]
    assert float(rows[-1]["train_loss"]) < 0.7 * float(rows[0]["train_loss"])


@pytest.mark.slow
def test_transcribe_formats_and_silence(run, sentences, tmp_path, capsys):
    out, _ = run
    wav = sorted((sentences / "test").glob("*.wav"))[0]
    assert main(["transcribe", str(out), str(wav), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    truth = dict(line.split("\t", 1) for line in (sentences / "test" / "text").read_text().splitlines())[wav.stem]
    assert doc["file"] == str(wav) and doc["seconds"] > 0.3
    assert len(doc["text"].split()) == len(truth.split()), (doc["text"], truth)  # every word, no more
    assert main(["transcribe", str(out), str(wav), "--format", "srt"]) == 0
    srt = capsys.readouterr().out.strip().splitlines()
    assert srt[0] == "1" and srt[1].startswith("00:00:") and " --> " in srt[1] and srt[2] == doc["text"]
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["transcribe", str(out), str(silent), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == ""  # silence: empty transcript, not an error


@pytest.mark.slow
def test_long_file_is_cut_on_silence(run, sentences, tmp_path):
    from seehear.tasks.transcribe import transcribe

    out, _ = run
    parts = [sf.read(f, dtype="float32")[0] for f in sorted((sentences / "test").glob("*.wav"))[:4]]
    gap = np.zeros(int(1.5 * 22050), dtype=np.float32)
    long = np.concatenate([x for p in parts for x in (p, gap)])
    path = tmp_path / "long.flac"
    sf.write(path, long, 22050)  # espeak's rate: resampled on the way in
    from seehear.tasks.transcribe import load

    assert len(transcribe(out, [path])[0]["segments"]) == 1  # up to transcribe.max_seconds: decoded whole
    t = load(out)
    t.cfg.transcribe.max_seconds = 5.0  # "far longer than any seen in training": cut on silence
    r = transcribe(out, [path], loaded=t)[0]
    assert len(r["segments"]) == 4 and abs(r["seconds"] - len(long) / 22050) < 0.01
    assert r["notes"] == ["resampled from 22050 Hz to the model's 16000 Hz"]  # said, not silently done
    starts = [s["start"] for s in r["segments"]]
    assert starts == sorted(starts) and all(s["end"] > s["start"] for s in r["segments"])


@pytest.mark.slow
def test_bad_input_is_reported_not_fatal(run, tmp_path, capsys):
    out, _ = run
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    assert main(["transcribe", str(out), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.wav" in err and "Traceback" not in err
    assert main(["transcribe", str(tmp_path), str(bad)]) == 2  # not a run folder: one line, exit 2


def test_transcripts_that_are_not_utf8_are_skipped_and_listed(sentences, tmp_path):
    """A Latin-1 transcript is listed in skipped.json with the reason; the others train. No audio is touched
    beyond one epoch on four recordings."""
    import shutil

    import seehear

    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    lines = (sentences / "train" / "text").read_text().splitlines()[:4]
    for ln in lines:
        utt = ln.split()[0]
        shutil.copy(sentences / "train" / f"{utt}.wav", d / f"{utt}.wav")
    (d / "wav.scp").write_text("".join(f"{ln.split()[0]} {ln.split()[0]}.wav\n" for ln in lines))
    body = "".join(ln + "\n" for ln in lines[1:]).encode() + f"{lines[0].split()[0]} caf\xe9\n".encode("latin-1")
    (d / "text").write_bytes(body)
    out = tmp_path / "run"
    seehear.train(str(d), str(out), overrides=["task=transcribe", *FAST[:4], "train.epochs=1",
                                               "data.valid_fraction=0.25", "data.test_fraction=0.25"],
                  progress=False)
    skipped = json.loads((out / "skipped.json").read_text())
    assert len(skipped) == 1 and lines[0].split()[0] in skipped[0][0] and "UTF-8" in skipped[0][1]


@pytest.fixture(scope="module")
def stream_run(sentences, tmp_path_factory):
    import seehear

    out = tmp_path_factory.mktemp("stream") / "stream"
    seehear.train(str(sentences), str(out), overrides=["task=transcribe", "model.name=lstm_ctc_stream",
                                                       "model.kwargs={hidden: 64, layers: 1}", *FAST[:3],
                                                       "train.epochs=2", "transcribe.decoder=greedy"],
                  progress=False)
    return out


@pytest.mark.slow
def test_stream_from_stdin_equals_stream_from_file(stream_run, sentences, tmp_path):
    import subprocess
    import sys

    x, sr = sf.read(sorted((sentences / "test").glob("*.wav"))[2], dtype="int16")
    import torch
    import torchaudio.functional as AF

    pcm = AF.resample(torch.from_numpy(x).float(), sr, 16000).round().clamp(-32768, 32767).short().numpy()
    wav = tmp_path / "16k.wav"
    sf.write(wav, pcm, 16000, subtype="PCM_16")
    cmd = [sys.executable, "-m", "seehear", "transcribe", str(stream_run), "--stream", "--format", "json"]
    from_file = subprocess.run([*cmd, str(wav)], capture_output=True, text=True, timeout=120)
    from_stdin = subprocess.run([*cmd, "-"], input=pcm.tobytes(), capture_output=True, timeout=120)
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_stdin.stderr
    finals = lambda out: [json.loads(l)["final"] for l in out.splitlines() if '"final"' in l]  # noqa: E731,E741
    assert finals(from_stdin.stdout.decode()) == finals(from_file.stdout)
    assert all(json.loads(line) for line in from_file.stdout.splitlines())  # one JSON object per line


@pytest.mark.slow
def test_streaming_matches_offline(stream_run, sentences, tmp_path):
    """A streaming model fed 160 ms chunks gives the unit scores of its offline pass, so the same greedy text."""
    import torch

    from seehear.speech.streaming import StreamingTranscriber
    from seehear.tasks.transcribe import load

    out = stream_run
    t = load(out)
    wav = sorted((sentences / "test").glob("*.wav"))[1]
    x, sr = sf.read(wav, dtype="float32")
    import torchaudio.functional as AF

    x = AF.resample(torch.from_numpy(x), sr, 16000)
    with torch.inference_mode():
        lp, n = t.model(x[None], torch.tensor([len(x)]))
    offline = t.decoder.decode(lp, n)[0].text
    s = StreamingTranscriber(out, loaded=t, endpoint_seconds=1e9)  # one utterance: compare whole texts
    step = int(0.16 * 16000)
    finals = []
    for i in range(0, len(x), step):
        finals += s.feed(x[i:i + step].numpy())["final"]
    finals += s.finish()["final"]
    assert " ".join(f["text"] for f in finals) == offline
    assert s.last_log_probs.shape == lp[0, : int(n[0])].shape
    assert torch.allclose(s.last_log_probs, lp[0, : int(n[0])], atol=1e-4)
    with pytest.raises(Exception, match="cannot stream"):
        StreamingTranscriber(tmp_path / "nope", loaded=load_run_of_offline(out))


def load_run_of_offline(out):
    """The streaming run's model swapped for an offline one: the streamer must refuse it."""
    from seehear.models import create_model
    from seehear.tasks.transcribe import load

    t = load(out)
    t.model.acoustic = create_model("conformer_ctc_tiny", len(t.units), 1, (80, 0))
    return t


@pytest.mark.slow
def test_beam_search_with_the_lm_beats_greedy(run, sentences, tmp_path):
    from seehear.tasks.transcribe import evaluate

    out, _ = run
    greedy = evaluate(out, sentences / "test", decoder="greedy", out=tmp_path / "g", progress=False)
    beam = evaluate(out, sentences / "test", decoder="beam", out=tmp_path / "b", progress=False)
    assert beam["wer"] <= greedy["wer"] and beam["wer"] < 0.3, (beam["wer"], greedy["wer"])


@pytest.mark.slow
def test_decoder_settings_are_tuned_on_the_validation_split(run):
    from seehear.tasks.transcribe import load

    out, res = run
    dec = json.loads((out / "meta.json").read_text())["decoding"]
    assert dec["utterances"] == res.meta["data"]["counts"]["valid"] > 0  # tuned on valid, never on test
    assert dec["valid_wer"] <= dec["default_wer"] and len(dec["grid"]) == 24
    t = load(out)
    assert (t.settings["lm_weight"], t.settings["word_score"]) == (dec["tuned"]["lm_weight"],
                                                                   dec["tuned"]["word_score"])


@pytest.mark.slow
def test_transcription_run_resumes(run, sentences, tmp_path):
    import shutil

    import seehear

    out, res = run
    own = tmp_path / "asr"
    shutil.copytree(out, own)
    again = seehear.train(str(sentences), str(own), resume=True, progress=False)
    assert again.meta["task"] == "transcribe" and again.meta["train"]["resumed"]
    assert (own / "units.json").read_text() == (out / "units.json").read_text()  # units kept, not re-learned
    assert again.metrics["wer"] == pytest.approx(res.metrics["wer"])


@pytest.mark.slow
def test_sentencepiece_units_and_extra_lm_text(sentences, tmp_path):
    import seehear

    extra = tmp_path / "more.txt"
    extra.write_text("banana split\nbanana one two\n", encoding="utf-8")
    out = tmp_path / "spm"
    r = seehear.train(str(sentences), str(out), task="transcribe", overrides=[
        *FAST[:4], "train.epochs=1", "transcribe.units=sentencepiece", "transcribe.vocab_size=40",
        f"transcribe.lm_text={extra}"], progress=False)
    units = json.loads((out / "units.json").read_text())
    assert units["kind"] == "sentencepiece" and (out / "units.model").is_file()
    assert any(len(t.strip("\u2581")) > 1 for t in units["tokens"][1:])  # pieces longer than a character
    arpa = (out / "lm.arpa").read_text()
    assert "banana" in arpa and "banana split" in arpa  # the user's text is in the word n-gram
    assert r.meta["units"]["kind"] == "sentencepiece"


@pytest.mark.slow
def test_evaluate_and_predict_know_the_task(run, sentences, tmp_path, capsys):
    out, res = run
    assert main(["evaluate", str(out), str(sentences / "test"), "--out", str(tmp_path / "ev")]) == 0
    text = capsys.readouterr().out
    assert "WER" in text and (tmp_path / "ev" / "metrics.json").is_file()
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["utterances"] == 12 and abs(m["cer"] - res.metrics["cer"]) < 1e-9  # same data, same model, same CER
    assert main(["predict", str(out), str(sorted((sentences / "test").glob("*.wav"))[0])]) == 2
    assert "seehear transcribe" in capsys.readouterr().err


@pytest.mark.slow
def test_microphone_missing_or_misused_is_one_line(stream_run, capsys):
    import sounddevice as sd

    has_input = any(d["max_input_channels"] > 0 for d in sd.query_devices())
    assert main(["transcribe", str(stream_run), "x.wav", "--mic"]) == 2
    assert "give no AUDIO files" in capsys.readouterr().err
    assert main(["transcribe", str(stream_run)]) == 2
    assert "give AUDIO files" in capsys.readouterr().err
    if not has_input:  # this machine has no microphone: the user is told so in one line
        assert main(["transcribe", str(stream_run), "--mic"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no usable microphone" in err, err


def test_ctc_options_train_and_record_the_plateau(sentences, tmp_path, capsys):
    """The CTC options together on a tiny run (one epoch): the run trains, meta.json's train.ctc holds the plateau
    record, the model comes back at its frame rate, and --hotword reaches the beam search (or is refused in one
    line where it cannot work)."""
    import seehear
    from seehear.tasks.transcribe import load

    out = tmp_path / "opts"
    r = seehear.train(str(sentences), str(out), task="transcribe", overrides=[
        *FAST[:4], "train.epochs=1", "model.subsample=2", "model.blank_bias=2.0", "train.inter_ctc_weight=0.3",
        "train.sortagrad=true", "train.warmup_fraction=0.1", "transcribe.tune_decoding=false"], progress=False)
    ctc = r.meta["train"]["ctc"]
    assert {"plateau_start_step", "plateau_end_step", "plateau_end_seconds", "curve"} <= set(ctc)
    assert ctc["curve"] and ctc["curve"][0][0] == 0 and ctc["last_emit_ratio"] is not None
    t = load(out)
    assert t.model.acoustic.frame_factor == 2 and abs(t.model.frame_seconds - 0.02) < 1e-9
    wav = str(sorted((sentences / "test").glob("*.wav"))[0])
    word = sorted((sentences / "train" / "text").read_text().split()[1::3])[-1]  # a word of the transcripts
    assert main(["transcribe", str(out), wav, "--hotword", word, "--format", "json"]) == 0
    assert "text" in json.loads(capsys.readouterr().out)
    assert main(["transcribe", str(out), wav, "--hotword", word, "--decoder", "greedy"]) == 2
    assert "beam search" in capsys.readouterr().err
    assert main(["transcribe", str(out), wav, "--hotword", "NOT-A-WORD-9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be spelled" in err, err

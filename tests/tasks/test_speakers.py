"""Speaker embeddings end to end on espeak-ng voices: train, verification metrics, enroll / verify / identify from
Python and from the CLI, and the one-line errors users can cause."""
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from seehear.cli import main
from seehear.data.records import Record
from seehear.data.synth import require_espeak
from seehear.errors import CorruptFileError, DataError

SENTENCES = ["the quick brown fox jumps over the lazy dog", "please call stella and ask her to bring these things",
             "she sells sea shells by the sea shore", "a large red balloon floated over the small town",
             "we will meet at seven near the old station", "my phone number is four two seven nine"]
# (language, voice variant, pitch): accents, male/female variants and pitches make distinct "speakers"
VOICES = [("en", "m1", 40), ("en", "m3", 55), ("en", "f2", 50), ("en", "f4", 65), ("en-us", "m2", 45),
          ("en-gb-scotland", "m4", 50), ("en-029", "f1", 60), ("en-us", "f3", 40), ("en", "m6", 70),
          ("en-gb-x-rp", "m7", 35)]
A, B = "en029f1p60", "enm1p40"  # a high female and a low male voice: clearly different


def _voices(out):
    exe = require_espeak()
    out.mkdir(parents=True, exist_ok=True)
    jobs = [[exe, "-v", f"{lang}+{var}", "-p", str(p), "-s", str(150 + 10 * (i % 3)),
             "-w", str(out / f"{lang.replace('-', '')}{var}p{p}_{i}.wav"), s]
            for lang, var, p in VOICES for i, s in enumerate(SENTENCES)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: subprocess.run(c, check=True, capture_output=True), jobs))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import seehear

    d = tmp_path_factory.mktemp("speakers")
    data = _voices(d / "voices")
    # through seehear.train: task=speakers dispatches to seehear.tasks.speakers
    r = seehear.train(data, d / "run", config={"data": {"label_pattern": r"(?P<speaker>[^_]+)_"}},
                      overrides=["task=speakers", "train.epochs=8", "train.threads=1", "data.workers=1",
                                 "train.batch_size=16", "speakers.segment_seconds=1.5"], progress=False)
    return r, data


@pytest.mark.slow
def test_train_writes_a_verification_run(run):
    r, _ = run
    m = json.loads((r.run_dir / "metrics.json").read_text())
    assert m["eer"] < 0.5 and m["min_dcf"] >= 0.0 and -1.0 <= m["threshold"] <= 1.0  # better than chance
    assert m["n_speakers"] == 2 and m["n_trials"] == 66 and m["speakers_seen_in_training"] == 0
    meta = json.loads((r.run_dir / "meta.json").read_text())
    assert meta["status"] == "done" and len(meta["labels"]) == 8 and meta["speakers"]["threshold"] == m["threshold"]
    assert (r.run_dir / "model.safetensors").is_file()
    page = (r.run_dir / "report.html").read_text()  # a report like every run's, with what this one measured
    assert ">EER<" in page and f"{m['eer']:.1%}" in page and "No metrics.json" not in page
    from seehear.engine.run_folder import load_run

    assert load_run(r.run_dir).model.backbone.embed_dim == 192


@pytest.mark.slow
def test_enroll_verify_identify_in_python(run):
    import seehear.tasks.speakers as spk

    r, data = run
    spk.enroll(r.run_dir, "alice", [data / f"{A}_0.wav", data / f"{A}_1.wav"])
    spk.enroll(r.run_dir, "bob", [data / f"{B}_0.wav", data / f"{B}_1.wav"])
    same = spk.verify(r.run_dir, "alice", data / f"{A}_4.wav")
    other = spk.verify(r.run_dir, "alice", data / f"{B}_4.wav")
    assert same["score"] > other["score"] and set(same) >= {"speaker", "score", "accepted", "threshold"}
    assert spk.identify(r.run_dir, data / f"{B}_5.wav", top_k=2)[0]["speaker"] == "bob"
    e = spk.embed(r.run_dir, [data / f"{A}_2.wav", data / f"{A}_3.wav"])
    assert e.shape == (2, 192) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    with pytest.raises(DataError, match="not enrolled"):
        spk.verify(r.run_dir, "nobody", data / f"{A}_4.wav")


@pytest.mark.slow
def test_enrolled_voices_are_told_apart_on_takes_not_enrolled(run, tmp_path):
    """Every voice enrolled from three takes; each of its other takes is identified as that voice."""
    import shutil

    import seehear.tasks.speakers as spk

    r, data = run
    own = tmp_path / "run"
    shutil.copytree(r.run_dir, own)
    names = sorted({p.name.split("_")[0] for p in data.glob("*.wav")})
    for n in names:
        spk.enroll(own, n, [data / f"{n}_{i}.wav" for i in range(3)])
    hits = [spk.identify(own, data / f"{n}_{i}.wav", top_k=1)[0]["speaker"] == n for n in names for i in (3, 4, 5)]
    assert sum(hits) / len(hits) >= 0.8, f"{sum(hits)}/{len(hits)} takes identified (chance: 1 in {len(names)})"


@pytest.mark.slow
def test_speaker_run_resumes(run, tmp_path):
    import shutil

    import seehear

    r, data = run
    own = tmp_path / "run"
    shutil.copytree(r.run_dir, own)
    again = seehear.train(data, own, resume=True, progress=False)
    assert again.meta["task"] == "speakers" and again.meta["train"]["resumed"]
    assert again.meta["labels"] == r.meta["labels"]  # the same training speakers, from the saved settings
    assert again.metrics["eer"] == pytest.approx(r.metrics["eer"])  # the same weights measure the same


@pytest.mark.slow
def test_cli_commands_and_errors(run, tmp_path, capsys):
    r, data = run
    rd = str(r.run_dir)
    assert main(["speakers", "enroll", rd, "carol", str(data / f"{A}_0.wav"), str(data / f"{A}_2.wav")]) == 0
    assert "enrolled carol" in capsys.readouterr().out
    assert main(["speakers", "enroll", rd, "dave", str(data / f"{B}_0.wav")]) == 0
    capsys.readouterr()
    assert main(["speakers", "identify", rd, str(data / f"{A}_5.wav"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["speaker"] in ("carol", "alice") and rows[0]["score"] >= rows[-1]["score"]
    rc = main(["speakers", "verify", rd, "carol", str(data / f"{A}_3.wav"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == (0 if res["accepted"] else 1)  # exit status says accepted / rejected
    assert main(["speakers", "list", rd]) == 0
    assert "carol" in capsys.readouterr().out
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    for argv in (["speakers", "verify", rd, "carol", str(bad)], ["speakers", "verify", rd, "nobody", str(bad)],
                 ["speakers", "enroll", rd, "eve", str(tmp_path / "missing.wav")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("seehear: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_speaker_split_prefers_the_data_test_split():
    from seehear.config import RunConfig
    from seehear.tasks.speakers import _split_speakers

    recs = [Record(f"/x/{i}.wav", label="t", group=s, split=sp)
            for i, (s, sp) in enumerate([("a", "train"), ("a", "train"), ("b", "train"), ("c", "test"),
                                         ("d", "test")])]
    tr, ev, how = _split_speakers(recs, [r.group for r in recs], RunConfig())
    assert (tr, ev, how) == ([0, 1, 2], [3, 4], "test")
    names = [s for s in "abcdefghij" for _ in range(3)]
    plain = [Record(f"/x/{i}.wav", group=s) for i, s in enumerate(names)]
    tr, ev, _ = _split_speakers(plain, names, RunConfig())
    assert not ({names[i] for i in tr} & {names[i] for i in ev}) and len({names[i] for i in ev}) == 2
    with pytest.raises(DataError, match="at least 4"):
        _split_speakers(plain[:9], names[:9], RunConfig())


def test_unreadable_file_is_a_one_line_error(tmp_path):
    from seehear.tasks.speakers import _read_wave

    bad = tmp_path / "x.wav"
    bad.write_bytes(b"")
    with pytest.raises(CorruptFileError) as e:
        _read_wave(str(bad), 16000)
    assert "\n" not in str(e.value) and "x.wav" in str(e.value)

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


def test_segments_draw_by_sample_weights():
    import torch

    from seehear.engine.speaker import Segments

    waves = [torch.full((800,), i, dtype=torch.int16) for i in range(6)]
    y = torch.arange(6)
    seen = torch.cat([b[1] for b in Segments(waves, y, 400, 3, sample_weights=torch.tensor([0, 0, 0, 1.0, 1, 1]))])
    assert len(seen) == 6 and set(seen.tolist()) <= {3, 4, 5}  # weight 0: never drawn
    plain = torch.cat([b[1] for b in Segments(waves, y, 400, 3)])
    assert sorted(plain.tolist()) == list(range(6))  # no weights: each utterance once an epoch


@pytest.mark.slow
def test_group_balanced_sampling_and_per_group_eer(run, tmp_path):
    """A manifest with a group column: train.sampler=group_balanced draws the groups evenly, and metrics.json has
    an EER per group with intervals; the sampler without its column is a one-line error."""
    import csv

    import seehear
    from seehear.errors import ConfigError

    _, data = run
    voices = sorted({p.name.split("_")[0] for p in data.glob("*.wav")})
    test = {"enf2p50", "en029f1p60", "enm1p40", "enusf3p40"}  # 2 high (pitch >= 50) and 2 low voices
    assert test <= set(voices)
    man = tmp_path / "voices.csv"
    with open(man, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker", "pitch", "split"])
        for p in sorted(data.glob("*.wav")):
            v = p.name.split("_")[0]
            w.writerow([p, v, v, "high" if int(v.rsplit("p", 1)[1]) >= 50 else "low",
                        "test" if v in test else "train"])
    over = ["task=speakers", "train.epochs=2", "train.threads=1", "data.workers=1", "train.batch_size=16",
            "speakers.segment_seconds=1.5", "train.sampler=group_balanced", "train.group_by=pitch"]
    r = seehear.train(man, tmp_path / "run", overrides=over, progress=False)
    meta = json.loads((r.run_dir / "meta.json").read_text())
    assert meta["data"]["train_per_group"]["column"] == "pitch"
    assert sum(meta["data"]["train_per_group"]["counts"].values()) == 36  # 6 training voices x 6 sentences
    g = json.loads((r.run_dir / "metrics.json").read_text())["per_group_eer"]
    assert g["column"] == "pitch" and set(g["per_group"]) == {"high", "low"}
    for row in g["per_group"].values():
        assert row["speakers"] == 2 and 0.0 <= row["eer"] <= 1.0 and "no interval" in row["note"]
    assert g["gap"] == pytest.approx(g["worst"] - g["best"], abs=1e-5)
    with pytest.raises(ConfigError, match="train.group_by"):
        seehear.train(man, tmp_path / "run2", overrides=over[:-1], progress=False)


def test_report_shows_eer_per_group():
    from seehear.evaluation.report_tasks import speakers_section

    m = {"eer": 0.1, "min_dcf": 0.5, "threshold": 0.3, "n_speakers": 8, "evaluated_on": "test",
         "per_group_eer": {"column": "age_group", "gap": 0.08, "worst_group": "child",
                           "per_group": {"adult": {"eer": 0.06, "ci95": [0.04, 0.09], "speakers": 60},
                                         "child": {"eer": 0.14, "ci95": [0.1, 0.2], "speakers": 3,
                                                   "note": "under 5 speakers"}}}}
    page = speakers_section(m)
    assert "EER by age_group" in page and "child worst" in page and page.index("child") < page.index("adult")
    assert "14.0%" in page and "4.0%–9.0%" in page

"""`seehear report` and `seehear explain` on tiny real runs, and their one-line errors."""
import csv
import json

import pytest

from seehear.cli import main

FAST = ["train.epochs=3", "train.threads=1", "train.batch_size=16", "data.workers=1"]


@pytest.fixture(scope="module")
def image_run(shapes_dir, tmp_path_factory):
    from seehear.api import train

    root = tmp_path_factory.mktemp("img")
    manifest = root / "shapes.csv"
    files = sorted(shapes_dir.rglob("*.png"))
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "site"])
        for i, p in enumerate(files):
            w.writerow([str(p), p.parent.name, "north" if i % 3 else "south"])
    train(manifest, root / "run", model="small_cnn", overrides=FAST + ["model.kwargs={width: 8}"], progress=False)
    return root / "run", manifest, files


@pytest.mark.slow
def test_report_and_explain_on_an_image_run(image_run, tmp_path, capsys):
    run, manifest, files = image_run
    code = main(["report", str(run), str(manifest), "--robustness", "--adversarial", "--fairness-by", "site"])
    out = capsys.readouterr().out
    assert code == 0 and "ECE" in out and "worst site" in out
    t = json.loads((run / "trust.json").read_text())
    assert t["measured_on"] == "the run's test split"
    assert t["calibration"]["fitted_on"] == "valid" and t["calibration"]["temperature"] > 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["calibration"]["temperature"] == t["calibration"]["temperature"]  # predict will use it
    assert set(t["fairness"]["accuracy"]["per_group"]) == {"north", "south"}
    assert len(t["robustness"]["per_corruption"]) == 10
    assert {r["attack"] for r in t["adversarial"]["results"]} == {"fgsm", "pgd"}
    assert t["explanations"]["faithfulness"]["deletion_auc_vs_random"] > 0
    for png in ("reliability_before_after", "corruptions", "adversarial", "explain_most_confident",
                "embeddings_tsne", "embeddings_pca"):
        assert (run / "trust" / f"{png}.png").is_file(), png
    html = (run / "report.html").read_text()
    assert "<h2>Trust</h2>" in html and html.count("data:image/png") >= 8
    from seehear.engine.run_folder import load_run

    assert float(load_run(run).model.temperature) == pytest.approx(t["calibration"]["temperature"])

    code = main(["explain", str(run), str(files[0]), str(files[-1]), "--method", "occlusion",
                 "--out", str(tmp_path / "ex")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 2
    assert len(list((tmp_path / "ex").glob("*.occlusion.png"))) == 2


@pytest.mark.slow
def test_audio_run_report_and_evidence_wave(tones_dir, tmp_path, capsys):
    import soundfile as sf

    from seehear.api import train

    run = tmp_path / "run"
    # a model that has learned the tones (3 epochs leave it at chance, and a flat model has no evidence to show)
    r = train(tones_dir, run, model="bcresnet1", overrides=FAST + ["audio.clip_seconds=0.5", "train.epochs=10",
                                                                   "train.lr=0.01"], progress=False)
    assert r.accuracy > 0.6
    assert main(["report", str(run), str(tones_dir)]) == 0
    t = json.loads((run / "trust.json").read_text())
    assert t["modality"] == "audio" and "fairness" not in t
    assert (run / "trust" / "explain_most_confident.png").is_file()
    wav = sorted(tones_dir.rglob("*.wav"))[0]
    assert main(["explain", str(run), str(wav), "--out", str(tmp_path / "ex")]) == 0
    ev, sr = sf.read(next((tmp_path / "ex").glob("*.evidence.wav")))
    assert sr == 16000 and len(ev) == 8000 and abs(ev).max() > 0


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["explain", "{tmp}/no-run", "x.png", "--out", "{tmp}/o"],
    ["explain", "{tmp}/model.onnx", "x.png", "--out", "{tmp}/o"],
    ["explain", "{run}", "{tmp}/x.wav", "--out", "{tmp}/o"],
    ["report", "{run}", "{manifest}", "--fairness-by", "nosuch"],
    ["report", "{run}", "{tmp}/tones"],
    ["report", "{tmp}/no-run", "{manifest}"],
])
def test_bad_input_is_one_line(args, image_run, tmp_path, tones_dir, capsys):
    import shutil

    run, manifest, _ = image_run
    (tmp_path / "model.onnx").write_bytes(b"not really")
    (tmp_path / "x.wav").write_bytes(open(sorted(tones_dir.rglob("*.wav"))[0], "rb").read())
    shutil.copytree(tones_dir, tmp_path / "tones")
    sub = {"{tmp}": str(tmp_path), "{run}": str(run), "{manifest}": str(manifest)}
    argv = []
    for a in args:
        for k, v in sub.items():
            a = a.replace(k, v)
        argv.append(a)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("seehear: error: ") and "\n" not in err and "Traceback" not in err


@pytest.mark.slow
def test_report_follows_the_column_a_run_balanced_by(image_run, shapes_dir, tmp_path):
    from seehear.api import train
    from seehear.trust import trust_report

    _, manifest, _ = image_run
    run = train(manifest, tmp_path / "balanced", model="small_cnn", progress=False,
                overrides=FAST + ["model.kwargs={width: 8}", "train.sampler=group_balanced",
                                  "train.group_by=site"]).run_dir
    counts = json.loads((run / "meta.json").read_text())["data"]["train_per_group"]
    assert counts["column"] == "site" and set(counts["counts"]) == {"north", "south"}
    t = trust_report(run, manifest, out=tmp_path / "t1")
    assert t["fairness"]["column"] == "site" and set(t["fairness"]["accuracy"]["per_group"]) == {"north", "south"}
    other = trust_report(run, shapes_dir, out=tmp_path / "t2")  # data without that column: no fairness, no error
    assert "fairness" not in other and other["n"] > 0

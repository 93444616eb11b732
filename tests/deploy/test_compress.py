"""seehear compress: pruned runs are smaller and still right, distillation pulls a student to its teacher, and the
new run folder is a run like any other (load_run, predict, evaluate, export)."""
import json

import pytest
import torch

import seehear
from seehear.cli import main
from seehear.deploy.distill import kd_loss

FAST = ["train.epochs=4", "train.threads=1", "train.batch_size=16"]


@pytest.fixture(scope="module")
def fastnet_run(shapes_dir, tmp_path_factory):
    return seehear.train(shapes_dir, tmp_path_factory.mktemp("compress") / "run", overrides=FAST,
                         progress=False).run_dir


def test_kd_loss_is_hard_labels_when_student_matches_teacher_and_grows_apart():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g)
    ce = torch.nn.functional.cross_entropy(s, y)
    torch.testing.assert_close(kd_loss(s, s, y, temperature=3.0, alpha=0.7), 0.3 * ce)
    far = kd_loss(s, -s, y, temperature=3.0, alpha=0.7)
    assert far > 0.3 * ce + 0.1
    # T^2 scaling: the soft term's size barely depends on T for small logit gaps
    t = 0.01 * torch.randn(8, 5, generator=g)
    a, b = kd_loss(t, -t, y, 2.0, 1.0), kd_loss(t, -t, y, 8.0, 1.0)
    assert 0.5 < float(a / b) < 20.0


@pytest.mark.slow
def test_pruned_run_is_smaller_still_right_and_a_run_like_any_other(fastnet_run, shapes_dir, tmp_path, capsys):
    out = tmp_path / "small"
    assert main(["compress", str(fastnet_run), "--out", str(out), "--prune", "0.5", "--epochs", "3",
                 "--int8", str(shapes_dir), "--no-distill"]) == 0
    printed = capsys.readouterr().out
    assert "compressed int8" in printed and "report.html" in printed
    c = json.loads((out / "compress.json").read_text())
    orig, small, q = c["table"]
    assert small["parameters"] < 0.5 * orig["parameters"] and small["mflops"] < orig["mflops"]
    assert small["onnx_kb"] < orig["onnx_kb"] and q["onnx_kb"] < small["onnx_kb"]
    assert small["accuracy"] >= orig["accuracy"] - 0.1 and small["accuracy"] >= 0.8, "still right on easy data"
    assert c["int8"]["top1_agreement_with_fp32"] >= 0.99
    assert c["finetune"]["teacher"] is None and "kl_to_teacher_after" not in c["finetune"], "--no-distill: labels"
    assert c["held_out_examples"] == len(json.loads((fastnet_run / "split.json").read_text())["test"])
    html = (out / "report.html").read_text()
    assert "Compression" in html and "batch-1 latency" in html

    run = seehear.load_run(out)  # rebuilt to the pruned shapes from meta.json
    assert run.meta["shapes"] and run.meta["compress"]["prune"]["ratio"] == 0.5
    assert sum(p.numel() for p in run.model.parameters()) == small["parameters"]
    files = sorted(str(p) for p in (shapes_dir / "circle").glob("*.png"))[:3]
    rows = seehear.predict(out, files)
    assert len(rows) == 3 and all(row["label"] in run.labels for row in rows)
    m = seehear.evaluate(out, shapes_dir, out=tmp_path / "eval")
    assert m["accuracy"] >= 0.8
    assert main(["export", str(out)]) == 0
    assert not list(tmp_path.glob(".small.*")), "no partial folder left behind"
    # an existing folder it did not write is refused, one line
    assert main(["compress", str(fastnet_run), "--out", str(fastnet_run), "--prune", "0.5"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_distillation_moves_the_student_toward_its_teacher(fastnet_run, shapes_dir, tmp_path):
    student = seehear.train(shapes_dir, tmp_path / "student", model="small_cnn",
                            overrides=["train.epochs=1", "train.threads=1", "train.batch_size=16"], progress=False)
    from seehear.deploy.compress import compress

    c = compress(student.run_dir, tmp_path / "distilled", distill_from=fastnet_run, epochs=3)
    ft = c["finetune"]
    assert ft["teacher"] == str(fastnet_run.resolve())
    assert ft["kl_to_teacher_after"] < 0.7 * ft["kl_to_teacher_before"]
    assert ft["loss_per_epoch"][-1] < ft["loss_per_epoch"][0]
    assert seehear.load_run(tmp_path / "distilled").meta["compress"]["finetune"]["epochs"] == 3

"""Few-shot classes (tasks/fewshot.py): prototypes from 3 examples classify a class the model never saw, the old
classes stay right, and `predict` follows the nearest-prototype rule once a few-shot class exists."""
import json
import shutil

import pytest

import seehear
from seehear.cli import main
from seehear.data.synth import make_digit_images
from seehear.errors import DataError, InputMismatchError
from seehear.tasks import fewshot

pytestmark = pytest.mark.slow
BASE = ["train.threads=1", "train.batch_size=32", "data.workers=1", "model.name=small_cnn", "train.optimizer=adamw",
        "train.lr=0.003", "image.size=16", "image.channels=1", "image.tta=none", "train.epochs=6",
        "train.norm_lr_scale=1", "train.decay_norms=false", "train.lookahead=false"]
OLD = "0123456"


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    """A run trained on digits 0-6 (30 each); 12 more of every digit 0-9 held back, the 7s never trained on."""
    root = tmp_path_factory.mktemp("fewshot")
    digits = make_digit_images(root / "all", per_class=42)
    base, held = root / "base", root / "held"
    for d in sorted(digits.iterdir()):
        files = sorted(d.iterdir())
        for part, fs in ((held, files[:12]), (base, files[12:] if d.name in OLD else [])):
            for f in fs:
                (part / d.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, part / d.name / f.name)
    run = seehear.train(base, root / "run", overrides=BASE, progress=False).run_dir
    return run, held


def test_three_examples_make_a_class(run_and_data, tmp_path):
    run, held = run_and_data
    run = shutil.copytree(run, tmp_path / "run")
    sevens = sorted((held / "7").iterdir())
    before = seehear.predict(run, [str(held / "0")])
    assert {r["label"] for r in before} <= set(OLD)
    assert main(["fewshot", str(run), "enroll", "7", *map(str, sevens[:3])]) == 0
    index = json.loads((run / "prototypes.json").read_text())
    assert index["labels"] == [*OLD, "7"] and index["fewshot"] == ["7"] and index["counts"][-1] == 3
    train = json.loads((run / "split.json").read_text())["train"]  # old classes: from the training split
    assert index["counts"][:-1] == [sum(f"/{c}/" in k for k in train) for c in OLD]
    new = seehear.predict(run, list(map(str, sevens[3:])))  # the 9 sevens not enrolled
    old = seehear.predict(run, [str(held / c) for c in OLD], top_k=4)
    assert sum(r["label"] == "7" for r in new) >= 6, [r["label"] for r in new]
    right = [r["label"] == r["file"].split("/")[-2] for r in old]
    assert sum(right) / len(right) >= 0.7
    assert sum(r["label"] == "7" for r in old) <= 0.1 * len(old)  # the new class does not swallow the old ones
    # forget it: predict is the classifier's again
    fewshot.forget(run, "7")
    assert not (run / "prototypes.json").exists()
    assert [r["label"] for r in seehear.predict(run, [str(held / "0")])] == [r["label"] for r in before]


def test_bad_enrolments_are_one_line(run_and_data, tmp_path, tones_dir, capsys):
    run, held = run_and_data
    eights = sorted((held / "8").iterdir())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match="needs 3 example"):
        fewshot.enroll(run, "8", [*map(str, eights[:2]), str(broken)])
    with pytest.raises(InputMismatchError, match="recognises image, but the examples are audio"):
        fewshot.enroll(run, "beep", [str(next(tones_dir.rglob("*.wav")))])
    with pytest.raises(DataError, match="already one of the classes"):
        fewshot.enroll(run, "3", [str(eights[0])])
    assert main(["fewshot", str(run), "enroll", "8", str(eights[0]), "--shots", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs 2 example" in err
    assert not (run / "prototypes.json").exists()

"""Semi-supervised training (`train --unlabelled DIR`, engine/fixmatch.py) and `seehear label` (tasks/label.py):
confident pseudo-labels are mostly right, and the review list puts the most doubtful files first."""
import csv
import json
import shutil

import pytest
import torch

import seehear
from seehear.cli import main
from seehear.data.synth import make_digit_images
from seehear.errors import DataError

pytestmark = pytest.mark.slow
BASE = ["train.threads=1", "train.batch_size=16", "data.workers=1", "model.name=small_cnn", "train.optimizer=adamw",
        "train.lr=0.003", "image.size=16", "image.channels=1", "image.tta=none", "train.epochs=8",
        "train.norm_lr_scale=1", "train.decay_norms=false", "train.lookahead=false", "data.test_fraction=0"]


@pytest.fixture(scope="module")
def semi(tmp_path_factory):
    """Digits 0-4: 8 labelled of each, 30 more of each in one flat folder without labels (their truth kept aside)."""
    root = tmp_path_factory.mktemp("semi")
    digits = make_digit_images(root / "all", per_class=38)
    labelled, unlabelled, truth = root / "labelled", root / "unlabelled", {}
    unlabelled.mkdir()
    for d in sorted(digits.iterdir())[:5]:
        files = sorted(d.iterdir())
        (labelled / d.name).mkdir(parents=True)
        for f in files[:8]:
            shutil.copy(f, labelled / d.name / f.name)
        for f in files[8:]:
            shutil.copy(f, unlabelled / f"{d.name}_{f.name}")
            truth[f"{d.name}_{f.name}"] = d.name
    run = seehear.train(labelled, root / "run", overrides=BASE + ["train.fixmatch_threshold=0.9"],
                        unlabelled=unlabelled, progress=False).run_dir
    return run, labelled, unlabelled, truth


def test_confident_pseudo_labels_are_mostly_right(semi):
    from seehear.data.cache import decode_all
    from seehear.data.sources import list_files
    from seehear.engine.fixmatch import pseudo_labels

    run, _, unlabelled, truth = semi
    meta = json.loads((run / "meta.json").read_text())
    fm = meta["train"]["fixmatch"]
    assert fm["unlabelled"] == len(truth) == meta["data"]["unlabelled"]["used"] and fm["looked_at"] > 0
    assert fm["pseudo_labelled_share"] > 0  # the unlabelled data took part
    loaded = seehear.load_run(run)
    recs = list_files([str(unlabelled)]).records
    d = decode_all(recs, loaded.cfg, "image", workers=1, progress=False)
    labels, mask = pseudo_labels(loaded.model, d.x, 0.9)
    want = torch.tensor([loaded.labels.index(truth[recs[i].path.split("/")[-1]]) for i in d.keep])
    assert mask.sum() >= 0.3 * len(mask)
    right = labels == want
    # "mostly right" (chance is 0.2), and the threshold picks out the surer part: more right than all of them
    assert right[mask].float().mean() >= 0.8
    assert right[mask].float().mean() >= right.float().mean()


def test_label_writes_review_with_lowest_confidence_first(semi, tmp_path):
    run, labelled, unlabelled, truth = semi
    (tmp_path / "new").mkdir()
    for name in sorted(truth)[::5]:
        shutil.copy(unlabelled / name, tmp_path / "new" / name)
    (tmp_path / "new" / "broken.png").write_bytes(b"not an image")
    out, review = tmp_path / "labels.csv", tmp_path / "review.csv"
    assert main(["label", str(run), str(tmp_path / "new"), "--out", str(out), "--review", str(review)]) == 0
    rows = list(csv.DictReader(out.open()))
    ranked = list(csv.DictReader(review.open()))
    assert len(rows) == len(ranked) == len(sorted(truth)[::5]) + 1
    assert ranked[0]["file"].endswith("broken.png") and ranked[0]["error"]
    margins = [float(r["margin"]) for r in ranked[1:]]
    assert margins == sorted(margins) and margins[0] < margins[-1]
    good = [r for r in rows if not r["error"]]
    assert all(0 < float(r["confidence"]) <= 1 and r["label"] in {"0", "1", "2", "3", "4"} for r in good)
    right = sum(r["label"] == truth[r["file"].split("/")[-1]] for r in good)
    assert right >= 0.7 * len(good)
    with pytest.raises(DataError, match="looks labelled"):
        from seehear.tasks.label import label

        label(run, labelled, out=tmp_path / "x.csv")


def test_unlabelled_folder_with_class_subfolders_is_refused(semi, tmp_path, capsys):
    _, labelled, _, _ = semi
    sets = sum((["--set", s] for s in BASE), [])
    assert main(["train", str(labelled), "--out", str(tmp_path / "r"), "--unlabelled", str(labelled), "--quiet",
                 *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert "looks labelled" in err and err.count("\n") == 0

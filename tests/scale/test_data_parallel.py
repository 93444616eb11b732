"""Data parallel training: a real 2-process DDP run on CPU (gloo, Lightning's launcher) whose ranks end with the
same weights and whose run folder is complete and written by rank 0 alone; the loaders' shards are disjoint, equal
in size and cover the data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seehear
from seehear.engine import loaders

# Loaded into every process of the run (PYTHONPATH): logs each file opened for writing, or renamed into place,
# under the run folder, with the process's rank, so the test sees who wrote what.
AUDIT = '''
import os, sys
_run, _log = os.environ["AUDIT_RUN"], os.open(os.environ["AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT

def _hook(event, args):
    path = None
    if event == "open" and isinstance(args[0], (str, os.PathLike)):
        mode, flags = args[1], args[2] or 0
        if (mode and any(c in mode for c in "wax+")) or (mode is None and flags & _W):
            path = args[0]
    elif event == "os.rename" and isinstance(args[1], (str, os.PathLike)):
        path = args[1]
    if path is not None and os.path.abspath(os.fspath(path)).startswith(_run):
        os.write(_log, f"{os.environ.get('LOCAL_RANK', '0')} {os.fspath(path)}\\n".encode())

sys.addaudithook(_hook)
'''


@pytest.mark.slow
def test_two_process_ddp_run_agrees_and_is_written_once(tmp_path):
    from seehear.data.synth import make_shape_images

    data = make_shape_images(tmp_path / "shapes", classes=3, per_class=16, size=16)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT)
    run, log = tmp_path / "run", tmp_path / "writes.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUDIT_RUN": str(run), "AUDIT_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(hook), str(Path(seehear.__file__).parents[1])])}
    env.pop("LOCAL_RANK", None), env.pop("RANK", None)
    r = subprocess.run([sys.executable, "-m", "seehear", "train", str(data), "--out", str(run), "--devices", "2",
                        "--strategy", "ddp", "--epochs", "3", "--set", "train.threads=1", "--set", "data.workers=1",
                        "--quiet"], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done"
    t = meta["train"]
    assert t["world_size"] == 2 and t["ranks_agree"] and len(set(t["rank_checksums"])) == 1
    for f in ("config.yaml", "split.json", "model.safetensors", "metrics.json", "report.html", "checkpoints/last.ckpt"):
        assert (run / f).is_file(), f
    writers = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert any(rank == "0" for rank, _ in writers)  # the hook saw rank 0 write the run
    assert not [p for rank, p in writers if rank != "0"], "a rank other than 0 wrote into the run folder"
    assert r.stdout.count("run: ") == 1  # one report, from rank 0
    from seehear.api import predict

    rows = predict(run, [next((data / "circle").iterdir())])
    assert rows[0]["top"][0]["label"] in meta["labels"]


def test_more_devices_than_the_machine_has(tmp_path, capsys):
    from seehear.cli import main
    from seehear.data.synth import make_shape_images

    data = make_shape_images(tmp_path / "shapes", classes=2, per_class=4, size=8)
    assert main(["train", str(data), "--out", str(tmp_path / "r"), "--devices", str((os.cpu_count() or 1) + 1)]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.devices" in err and len(err.splitlines()) == 1


def _ranks(monkeypatch, w, make):
    """Each rank's items from a loader built by make(), with torch.distributed's rank and world size as given."""
    out = []
    for r in range(w):
        monkeypatch.setattr(loaders, "world", lambda r=r: (r, w))
        out.append(make())
    return out


@pytest.mark.parametrize("w", [2, 3])
def test_batches_shards_are_disjoint_equal_and_cover(monkeypatch, w):
    n = 50
    x, y = torch.arange(n).float()[:, None], torch.arange(n)

    def epoch():
        b = loaders.Batches(x, y, batch_size=4, shuffle=True, seed=3)
        return len(b), [int(v) for _, yb in b for v in yb]

    parts = _ranks(monkeypatch, w, epoch)
    seen = [set(p) for _, p in parts]
    assert len({ln for ln, _ in parts}) == 1 and len({len(s) for s in seen}) == 1  # same number of batches
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    assert len(set().union(*seen)) == n - n % w  # all but the n % w left out this epoch


def test_length_batches_shard_whole_batches(monkeypatch):
    from seehear.data.cache import DecodedWaves
    from seehear.engine.ctc import LengthBatches

    lengths = torch.randint(800, 4000, (41,), generator=torch.Generator().manual_seed(0))
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    samples = torch.cat([torch.full((int(n),), i + 1, dtype=torch.int16) for i, n in enumerate(lengths)])
    waves = DecodedWaves(samples, offsets, list(range(41)))  # recording i is all (i + 1): batches say their rows

    def batches():
        lb = LengthBatches(waves, list(range(41)), [[1]] * 41, batch_size=4, shuffle=True, seed=1)
        return len(lb), [tuple(int(v) - 1 for v in x[:, 0]) for x, *_ in lb], lb.batches

    (n0, b0, all_b), (n1, b1, _) = _ranks(monkeypatch, 2, batches)
    whole = {tuple(b) for b in all_b}
    assert n0 == n1 == len(b0) == len(b1) == len(all_b) // 2
    assert not set(b0) & set(b1) and set(b0) | set(b1) <= whole  # whole batches, each on one rank
    assert len(set(b0) | set(b1)) == len(all_b) - len(all_b) % 2


def test_speaker_segments_shard_utterances(monkeypatch):
    from seehear.engine.speaker import Segments

    waves = [torch.full((100 + i,), i, dtype=torch.int16) for i in range(30)]
    y = torch.arange(30)

    def epoch():
        s = Segments(waves, y, seg=50, batch_size=5, seed=2)
        return len(s), [int(v) for _, yb in s for v in yb]

    (n0, p0), (n1, p1) = _ranks(monkeypatch, 2, epoch)
    assert n0 == n1 == 3 and len(p0) == len(p1) == 15
    assert not set(p0) & set(p1) and set(p0) | set(p1) == set(range(30))

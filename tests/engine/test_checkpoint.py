import json
import os

import pytest
import torch

from seehear.engine.checkpoint import (AtomicCheckpointIO, atomic_write, load_weights, read_json, save_weights,
                                       write_json)
from seehear.errors import RunError


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    p = tmp_path / "a.json"
    write_json(p, {"v": 1})

    def boom(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert read_json(p) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind


def test_weights_round_trip(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    save_weights(m.state_dict(), tmp_path / "w.safetensors", {"k": "v"})
    back = load_weights(tmp_path / "w.safetensors")
    for k, v in m.state_dict().items():
        assert torch.equal(back[k], v)


def test_damaged_files_give_run_errors(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(RunError, match="not a readable safetensors"):
        load_weights(tmp_path / "w.safetensors")
    with pytest.raises(RunError, match="missing"):
        load_weights(tmp_path / "none.safetensors")
    (tmp_path / "m.json").write_text("{broken")
    with pytest.raises(RunError, match="damaged"):
        read_json(tmp_path / "m.json")


def test_checkpoint_io_refuses_pickled_code(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "ok.ckpt")
    assert io.load_checkpoint(tmp_path / "ok.ckpt")["epoch"] == 3

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(RunError, match="cannot be read safely"):
        io.load_checkpoint(tmp_path / "evil.ckpt")

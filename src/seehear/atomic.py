"""Files that must survive a kill at any moment: written to a temporary file beside the target, flushed to disk,
then renamed over it (rename is atomic on POSIX), so a reader sees the old file or the new one, never half of one.
The lowest layer: every package that writes a file uses these.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from seehear.errors import RunError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path), fsync it, then rename it to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise RunError(f"{p} is missing: is {p.parent} a complete seehear run folder?") from None
    except json.JSONDecodeError as e:
        raise RunError(f"{p} is damaged ({e.msg}); train the run again") from None

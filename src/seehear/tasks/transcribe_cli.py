"""`seehear transcribe RUN AUDIO...`: argument parsing only; the work is in seehear.tasks.transcribe."""
from __future__ import annotations


def add_commands(sub) -> None:
    pass

"""`seehear speakers enroll | verify | identify`: argument parsing only; the work is in seehear.tasks.speakers."""
from __future__ import annotations


def add_commands(sub) -> None:
    pass

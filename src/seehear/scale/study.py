"""The optuna study behind `seehear tune`: its storage (SQLite by default, so a killed study resumes), a lock so
that two processes never drive one study, and the identity checks that keep a study from being resumed on other
data, with another search space or by an incompatible seehear.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from seehear.errors import RunError

STUDY_NAME = "seehear-tune"
# bump when what a study's trials mean changes; a study of another format is not resumed.
# 2: trials report at tenths of their training, not at epochs (scale/pruning.py)
FORMAT = 2


class StudyError(RunError):
    """A tuning study's storage cannot be used (locked, someone else's, another version)."""


@contextmanager
def study_lock(out: Path):
    """One tune process per OUT folder. flock is released by the kernel when a killed process dies, so a study
    killed with SIGKILL can be resumed at once."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".tune.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise StudyError(f"another `seehear tune` is running on {out} (its lock {path} is held); wait for it or "
                         f"use another --out") from None
    try:
        f.seek(0), f.truncate(), f.write(str(os.getpid())), f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def storage_url(storage: str | None, out: Path) -> str:
    if not storage:
        return f"sqlite:///{(out / 'study.db').resolve()}"
    if "://" not in storage:  # a plain path is a SQLite file
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


def open_storage(url: str):
    import optuna
    import sqlalchemy.exc

    kwargs = {"connect_args": {"timeout": 2}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except sqlalchemy.exc.OperationalError as e:
        if "locked" in str(e):
            raise StudyError(f"{url} is locked by another process (a study running elsewhere?); wait for it or "
                             f"use another --storage") from None
        raise StudyError(f"{url} cannot be opened as a study storage: {_first_line(e)}") from None
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise StudyError(f"{url} is not an optuna study storage: {_first_line(e)}") from None
    except (RuntimeError, ValueError) as e:  # optuna: schema of another optuna version, or a bad URL
        raise StudyError(f"{url} cannot be used: {_first_line(e)}") from None


def open_study(url: str, identity: dict, sampler, pruner):
    """Create the study, or load it when it exists and is the same study (same identity); raises StudyError
    otherwise. identity: what must match to resume (format, task, modality, data fingerprint, space)."""
    import optuna
    import sqlalchemy.exc

    storage = open_storage(url)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        if names and STUDY_NAME not in names:
            raise StudyError(f"{url} holds another study ({', '.join(names[:3])}), not a seehear tune study; use "
                             f"another --storage")
        study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize", sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
        attrs = study.user_attrs
        if not attrs:
            for k, v in identity.items():
                study.set_user_attr(k, v)
        else:
            if attrs.get("format") != identity["format"]:
                raise StudyError(f"{url} holds a study of another seehear tune version (format "
                                 f"{attrs.get('format')}, this is {identity['format']}); use another --storage")
            differ = [k for k, v in identity.items() if attrs.get(k) != v]
            if differ:
                raise StudyError(f"{url} holds a study of other settings ({', '.join(differ)} differ: other data or "
                                 f"search space); use another --storage or --out")
        return study
    except sqlalchemy.exc.OperationalError as e:
        if "locked" in str(e):
            raise StudyError(f"{url} is locked by another process; wait for it or use another --storage") from None
        raise StudyError(f"{url}: {_first_line(e)}") from None


def requeue_interrupted(study) -> int:
    """Trials left RUNNING by a killed process (we hold the lock, so no one else runs them) are marked failed and
    their points queued again, so a resumed study tries them instead of losing them. Returns how many."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        n += 1
    return n


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]

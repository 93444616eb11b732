"""Errors a user can cause. Each names what is wrong and what to do; the CLI prints it on one line.

Anything that is not a SeehearError is a bug in seehear and may show a traceback.
"""
from __future__ import annotations


class SeehearError(Exception):
    """Base class: a problem with the user's input, data, or environment, with a fix in the message."""


class DataError(SeehearError):
    """The data (a folder, a manifest, a file) cannot be used as it is."""


class CorruptFileError(DataError):
    """One file cannot be decoded. During training such files are skipped and reported, not fatal."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class ConfigError(SeehearError):
    """A setting is unknown or has a value that cannot work."""


class RunError(SeehearError):
    """A run folder is missing, incomplete, or from an incompatible version."""


class InputMismatchError(SeehearError):
    """A trained model was given input of a kind it was not trained on (an image to an audio model, say)."""


class MissingToolError(SeehearError):
    """An external program (espeak-ng, say) is needed and not installed."""

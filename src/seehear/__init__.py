"""seehear: from a folder of images or recordings to a trained, measured recognizer."""
from seehear.errors import SeehearError

__version__ = "0.1.0"

__all__ = ["SeehearError", "__version__", "train", "evaluate", "predict", "load_run", "check_data"]


def __getattr__(name):  # lazy: `import seehear` stays fast and the CLI can print errors before torch loads
    if name in {"train", "evaluate", "predict", "load_run", "check_data"}:
        from seehear import api

        return getattr(api, name)
    raise AttributeError(name)

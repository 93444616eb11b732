"""seehear: from a folder of images or recordings to a trained, measured recognizer."""
from seehear.errors import SeehearError

__version__ = "0.1.0"

# name -> module that defines it; imported on first use, so `import seehear` stays fast and the CLI can print
# errors before torch loads
_LAZY = {"train": "seehear.api", "evaluate": "seehear.api", "predict": "seehear.api", "load_run": "seehear.api",
         "check_data": "seehear.api", "explain": "seehear.trust", "trust_report": "seehear.trust",
         "compress": "seehear.deploy.compress", "serve": "seehear.serve", "tune": "seehear.scale.tune",
         "federate": "seehear.scale.federate"}

__all__ = ["SeehearError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        attr = "run" if name == "serve" else name
        return getattr(importlib.import_module(_LAZY[name]), attr)
    raise AttributeError(name)

"""Data layer: list examples (sources), split them (splits), decode them (decode, cache), inspect them (check).

Only the torch-free parts are imported eagerly; decode/cache/check/synth load on first use.
"""
from seehear.data.records import AUDIO_EXTS, IMAGE_EXTS, Record, Source
from seehear.data.sources import list_files, load_source, require_trainable

__all__ = ["AUDIO_EXTS", "IMAGE_EXTS", "Record", "Source", "load_source", "list_files", "require_trainable",
           "make_splits", "find_leakage", "save_splits", "load_splits", "decode_image", "decode_audio",
           "decode_all", "DecodedSet", "check_data", "format_report"]

_LAZY = {"make_splits": "splits", "find_leakage": "splits", "save_splits": "splits", "load_splits": "splits",
         "decode_image": "decode", "decode_audio": "decode", "decode_all": "cache", "DecodedSet": "cache",
         "check_data": "check", "format_report": "check"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"seehear.data.{_LAZY[name]}"), name)
    raise AttributeError(name)

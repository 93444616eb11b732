"""Backbones by name (models/registry.py) and, in recognizer.py, the front end + backbone + labels bundle."""
from seehear.models.registry import ModelSpec, create_model, get_spec, list_models, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]

"""Converters of foreign checkpoint formats; importing this package registers them all."""

import importlib

from audioflex.checkpoints.convert.base import (
    ConversionError,
    Converted,
    get_converter,
    list_converters,
    read_state_dict,
    register_converter,
    strip_prefix,
)

for _module in ("ast", "htsat", "passt"):
    importlib.import_module(f"audioflex.checkpoints.convert.{_module}")

__all__ = [
    "ConversionError",
    "Converted",
    "get_converter",
    "list_converters",
    "read_state_dict",
    "register_converter",
    "strip_prefix",
]

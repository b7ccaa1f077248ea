"""Converters of foreign checkpoint formats; importing this package registers them all."""

from audioflex.checkpoints.convert import ast, htsat, passt  # noqa: F401  (register the formats)
from audioflex.checkpoints.convert.base import (
    ConversionError,
    Converted,
    get_converter,
    list_converters,
    read_state_dict,
    register_converter,
    strip_prefix,
)

__all__ = [
    "ConversionError",
    "Converted",
    "get_converter",
    "list_converters",
    "read_state_dict",
    "register_converter",
    "strip_prefix",
]

"""Converters of foreign checkpoint formats; importing this package registers them all."""

from audioflex.checkpoints.convert import (  # noqa: F401  (register the formats)
    ast,
    ast_to_elastic,
    elasticast,
    hf_ast,
    htsat,
    passt,
)
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

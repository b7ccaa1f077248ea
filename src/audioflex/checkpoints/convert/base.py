"""Shared pieces of the converters of foreign checkpoint formats.

A converter is a pure ``state_dict -> state_dict`` function plus the knowledge of which audioflex
model (name + args) and front end the weights belong to. ``audioflex convert FORMAT SRC OUT`` reads
``SRC`` safely (safetensors, or ``torch.load(weights_only=True)``), converts, builds the model,
loads strictly and writes an audioflex checkpoint directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audioflex.audio.frontend.base import FrontendConfig


class ConversionError(ValueError):
    """A foreign checkpoint cannot be converted (names the file and the problem)."""


@dataclass
class Converted:
    """Result of a conversion: enough to build, load and save an audioflex model."""

    model_name: str
    model_args: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    frontend: FrontendConfig | None = None
    labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Converter:
    """A registered foreign format: ``convert(path, **options) -> Converted``."""

    name: str
    convert: Callable[..., Converted]
    help: str


_CONVERTERS: dict[str, Converter] = {}


def register_converter(name: str, convert: Callable[..., Converted], help: str) -> None:
    _CONVERTERS[name] = Converter(name, convert, help)


def get_converter(name: str) -> Converter:
    """The converter registered as ``name`` (every format is registered: importing this module
    runs ``audioflex.checkpoints.convert``'s ``__init__``, which imports them all)."""
    if name not in _CONVERTERS:
        raise KeyError(f"unknown checkpoint format {name!r}; known formats: {', '.join(sorted(_CONVERTERS))}")
    return _CONVERTERS[name]


def list_converters() -> list[Converter]:
    """Every registered converter, sorted by name."""
    return [_CONVERTERS[k] for k in sorted(_CONVERTERS)]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a foreign weights file without unpickling arbitrary objects.

    ``.safetensors`` through safetensors; anything else through ``torch.load(weights_only=True)``.
    Wrappers ``{"state_dict": ...}`` (Lightning) and ``{"model": ...}`` are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise ConversionError(f"{path}: not a readable safetensors file ({e})") from e
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({first}). "
            "audioflex never unpickles arbitrary objects; re-save the file's state_dict with "
            "torch.save(model.state_dict(), ...) or as safetensors."
        ) from e
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path}: does not hold a state dict of tensors")
    return dict(obj)


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key that has it (e.g. ``module.`` from DataParallel)."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in sd.items()}


def bool_option(value: Any, name: str) -> bool:
    """A boolean converter option: ``-o name=true`` arrives as a bool; "true"/"false"/"1"/"0"/
    "yes"/"no" strings and 0/1 are accepted too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConversionError(f"option {name} must be true or false, got {value!r}")

"""Model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

Each family registers its named variants with a builder taking plain kwargs, the variant's
defaults and the front end it expects. Importing this module imports the package
``audioflex.models`` first, whose ``__init__`` imports every family, so the registry is complete
whenever it can be called. ``create_model`` records the name and the effective
arguments on the model (``model.model_name``, ``model.model_args``) so a checkpoint can rebuild it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from audioflex.audio.frontend.base import FrontendConfig


@dataclass(frozen=True)
class ModelSpec:
    """A registered model variant."""

    name: str
    builder: Callable[..., nn.Module]
    defaults: dict[str, Any] = field(default_factory=dict)
    frontend: Callable[[], FrontendConfig] | None = None
    description: str = ""


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    frontend: Callable[[], FrontendConfig] | None = None,
    description: str = "",
    **defaults: Any,
) -> None:
    """Register ``name`` as ``builder(**defaults, **overrides)``."""
    _MODELS[name] = ModelSpec(name, builder, dict(defaults), frontend, description)


def get_spec(name: str) -> ModelSpec:
    """The registered spec of ``name``; ``KeyError`` with the known names otherwise."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``kwargs`` override the variant's defaults."""
    spec = get_spec(name)
    args = {**spec.defaults, **kwargs}
    model = spec.builder(**args)
    model.model_name = name
    model.model_args = args
    return model


def registered_name(model: nn.Module) -> str | None:
    """The registry name :func:`create_model` gave ``model`` (None for a model built directly)."""
    name = getattr(model, "model_name", None)
    return name if isinstance(name, str) else None


def registered_args(model: nn.Module) -> dict[str, Any] | None:
    """The effective arguments :func:`create_model` built ``model`` with (None if built directly)."""
    args = getattr(model, "model_args", None)
    return args if isinstance(args, dict) else None


def default_frontend(name: str, model_args: dict[str, Any] | None = None) -> FrontendConfig | None:
    """The front-end config the variant expects by default.

    With ``model_args`` (a model's arguments), the fields the model fixes follow them: the mel
    bins (``num_mel_bins``) and a fixed input length (``max_length`` -> ``target_length``).
    """
    spec = get_spec(name)
    fe = spec.frontend() if spec.frontend is not None else None
    if fe is None or not model_args:
        return fe
    changes: dict[str, Any] = {}
    if "num_mel_bins" in model_args:
        for field_name in ("num_mel_bins", "n_mels"):
            if hasattr(fe, field_name):
                changes[field_name] = int(model_args["num_mel_bins"])
    if getattr(fe, "target_length", None) is not None and model_args.get("max_length") is not None:
        changes["target_length"] = int(model_args["max_length"])
    return fe.replace(**changes) if changes else fe


def builder_arguments(name: str) -> set[str] | None:
    """Keyword arguments the variant's builder accepts (a builder taking ``**kwargs`` is looked
    through to the class it says it returns); None when they cannot be known."""
    builder = get_spec(name).builder
    for target in (builder, _returned_class(builder)):
        if target is None:
            continue
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            return None
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return {k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    return None


def _returned_class(builder: Callable[..., Any]) -> type | None:
    try:
        ret = typing.get_type_hints(builder).get("return")
    except Exception:  # noqa: BLE001 (unresolvable annotations: no further look)
        return None
    return ret if isinstance(ret, type) else None

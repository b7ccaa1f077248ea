"""Model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

Each family registers its named variants with a builder taking plain kwargs, the variant's
defaults and the front end it expects. ``create_model`` records the name and the effective
arguments on the model (``model.model_name``, ``model.model_args``) so a checkpoint can rebuild it.
"""

from __future__ import annotations

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


def _ensure_families_loaded() -> None:
    # Importing the families registers their variants.
    import audioflex.models  # noqa: F401


def get_spec(name: str) -> ModelSpec:
    """The registered spec of ``name``; ``KeyError`` with the known names otherwise."""
    _ensure_families_loaded()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _ensure_families_loaded()
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``kwargs`` override the variant's defaults."""
    spec = get_spec(name)
    args = {**spec.defaults, **kwargs}
    model = spec.builder(**args)
    model.model_name = name
    model.model_args = args
    return model


def default_frontend(name: str) -> FrontendConfig | None:
    """The front-end config the variant expects by default."""
    spec = get_spec(name)
    return spec.frontend() if spec.frontend is not None else None

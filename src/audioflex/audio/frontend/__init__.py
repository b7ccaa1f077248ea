"""Front ends: waveform ``[B, T]`` -> spectrogram ``[B, F, T']``.

``KaldiFbank`` (AST/ElasticAST), ``LogMel`` (HTS-AT), ``PasstMel`` (PaSST). Names are imported
lazily; ``build_frontend`` loads every kind on demand.
"""

from __future__ import annotations

import importlib
from typing import Any

from audioflex.audio.frontend.base import (
    Frontend,
    FrontendConfig,
    build_frontend,
    frontend_config_from_dict,
    register_frontend,
)

_LAZY = {
    "KaldiFbank": "kaldi",
    "KaldiFbankConfig": "kaldi",
    "compute_norm_stats": "kaldi",
    "LogMel": "logmel",
    "LogMelConfig": "logmel",
    "PasstMel": "passt",
    "PasstMelConfig": "passt",
}

__all__ = [
    "Frontend",
    "FrontendConfig",
    "build_frontend",
    "frontend_config_from_dict",
    "register_frontend",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"audioflex.audio.frontend.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'audioflex.audio.frontend' has no attribute {name!r}")

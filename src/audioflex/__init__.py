"""audioflex: audio transformers (AST, ElasticAST, HTS-AT, PaSST) on audio of any length.

The public API is small: ``load_audio``, ``audio_info``, ``create_model``, ``list_models``,
``save_checkpoint``, ``load_checkpoint``, ``Pipeline`` and ``PostProcessing`` (event post-processing).
Names are imported lazily so that ``import audioflex`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "AudioError": "audioflex.audio.io",
    "load_audio": "audioflex.audio.io",
    "audio_info": "audioflex.audio.io",
    "AudioInfo": "audioflex.audio.io",
    "KaldiFbank": "audioflex.audio.frontend",
    "KaldiFbankConfig": "audioflex.audio.frontend",
    "build_frontend": "audioflex.audio.frontend",
    "compute_norm_stats": "audioflex.audio.frontend",
    "create_model": "audioflex.models.registry",
    "list_models": "audioflex.models.registry",
    "AudioOutput": "audioflex.models.outputs",
    "save_checkpoint": "audioflex.checkpoints",
    "load_checkpoint": "audioflex.checkpoints",
    "CheckpointError": "audioflex.checkpoints",
    "Pipeline": "audioflex.inference.pipeline",
    "PostProcessing": "audioflex.evaluate.events",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioflex' has no attribute {name!r}")

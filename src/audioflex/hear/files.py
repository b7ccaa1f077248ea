"""Building the HEAR embedding model from an audioflex checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import torch

from audioflex.hear.embedder import EmbeddingModel
from audioflex.hear.options import EmbedOptions


def load_embedding_model(path: str | Path, options: EmbedOptions | None = None,
                         device: str | torch.device = "cpu") -> EmbeddingModel:
    """An :class:`EmbeddingModel` from an audioflex checkpoint directory."""
    from audioflex.checkpoints import CheckpointError, load_checkpoint

    if not str(path):
        raise ValueError(
            "load_model needs an audioflex checkpoint directory (model_file_path); convert foreign "
            "weights first with `audioflex convert FORMAT SRC OUT`"
        )
    ck = load_checkpoint(path, map_location=device)
    if ck.frontend is None:
        raise CheckpointError(f"{path}: the checkpoint has no front-end config; re-save it with one")
    return EmbeddingModel(ck.model, ck.frontend.to(device), options, labels=ck.labels)


__all__ = ["load_embedding_model"]

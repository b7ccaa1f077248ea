"""HEAR 2021 API over any audioflex checkpoint (``audioflex.hear`` is a HEAR module).

::

    model = audioflex.hear.load_model("ckpt_dir", hop_ms=25, layers=[-4, -1])
    emb, ts = audioflex.hear.get_timestamp_embeddings(audio, model)   # [n, T, D], [n, T] ms
    scene = audioflex.hear.get_scene_embeddings(audio, model)          # [n, D]

or ``python -m heareval.embeddings.runner audioflex.hear --model CKPT_DIR --model-options
'{"hop_ms": 50}'``. Options: :class:`~audioflex.hear.options.EmbedOptions`.
"""

from __future__ import annotations

from typing import Any

import torch

from audioflex.hear.embedder import EmbeddingModel
from audioflex.hear.files import load_embedding_model
from audioflex.hear.options import EmbedOptions

__all__ = [
    "EmbedOptions",
    "EmbeddingModel",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "load_model",
]


def load_model(model_file_path: str = "", model_options: str | dict[str, Any] | None = None,
               *, device: str | torch.device = "cpu", **options: Any) -> EmbeddingModel:
    """HEAR ``load_model``: an audioflex checkpoint directory -> :class:`EmbeddingModel`.

    Options come as keyword arguments and/or a JSON ``model_options`` string (as HEAR runners
    pass them): ``hop_ms``, ``window_ms``, ``levels``, ``layers``, ``layer_mode``, ``layer_pool``,
    ``include_logits``, ``include_mel``, ``mel_ms``, ``scene_window_ms``, ``scene_hop_ms``,
    ``max_frames``, ``stream_s``, ``timestamp_mode``, ``bf16``.
    """
    opts = EmbedOptions.parse(model_options, **options)
    return load_embedding_model(model_file_path, opts, device=device)


def get_timestamp_embeddings(audio: torch.Tensor, model: EmbeddingModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``audio [n_sounds, n_samples]`` float32 -> (embeddings ``[n, T, D]``, timestamps ``[n, T]`` ms)."""
    _check_model(model)
    return model.timestamp_embeddings(audio)


def get_scene_embeddings(audio: torch.Tensor, model: EmbeddingModel) -> torch.Tensor:
    """``audio [n_sounds, n_samples]`` float32 -> scene embeddings ``[n, D]``."""
    _check_model(model)
    return model.scene_embeddings(audio)


def _check_model(model: object) -> None:
    if not isinstance(model, EmbeddingModel):
        raise TypeError(
            f"expected the model returned by audioflex.hear.load_model, got {type(model).__name__}"
        )

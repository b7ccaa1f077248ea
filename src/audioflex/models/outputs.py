"""The one output type every model returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AudioOutput:
    """What a model computes for a batch of B clips.

    Attributes:
        clip_logits: ``[B, C]`` clip-level logits (no sigmoid/softmax applied).
        embedding: ``[B, D]`` clip embedding (the pooled features the head reads).
        frame_logits: ``[B, T', C]`` frame-wise logits, or None for models without a frame head.
        frame_hop_s: seconds between frames of ``frame_logits`` (None without a frame head).
        hidden_states: outputs of the requested blocks, in the order asked for. Fixed-grid models
            give ``[B, N, D]`` each; packed models give flat ``[N_total, D]`` tokens.
    """

    clip_logits: torch.Tensor
    embedding: torch.Tensor
    frame_logits: torch.Tensor | None = None
    frame_hop_s: float | None = None
    hidden_states: tuple[torch.Tensor, ...] = ()

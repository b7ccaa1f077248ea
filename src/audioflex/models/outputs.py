"""The one output type every model returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AudioOutput:
    """What a model computes for a batch of B clips (``forward`` and ``forward_head`` of every family).

    One shape convention per field, whatever the family (rows follow the batch: the spectrogram
    rows of a grid model, the clips of a ``PackedBatch`` in its order):

    Attributes:
        clip_logits: ``[B, C]`` clip-level logits (no sigmoid/softmax applied).
        embedding: ``[B, D]`` clip embedding (the pooled features the head reads).
        frame_logits: ``[B, S, C]`` frame-wise logits, or None for models without a frame head.
            ``S``: the steps of a grid model's window (HTS-AT: 32), or of the batch's longest
            clip (packed); steps past a clip's end carry no information (ElasticAST writes
            ``FRAME_PAD`` = -1e4 there; a grid model's count follows the ``frames`` it was given).
        frame_hop_s: seconds between steps of ``frame_logits`` (None without a frame head, or when
            a packed model was not told the frame shift).
        hidden_states: the requested blocks' outputs (before the final norm), in the order asked
            for, in the model's token layout: ``[B, N_l, D_l]`` for grid models (CLS-like tokens
            first: ``contract.prefix_tokens``), flat ``[N_total, D]`` packed tokens (segments as
            in the batch) for packed models; ``model.pool_hidden`` turns either into ``[B, D_l]``.
    """

    clip_logits: torch.Tensor
    embedding: torch.Tensor
    frame_logits: torch.Tensor | None = None
    frame_hop_s: float | None = None
    hidden_states: tuple[torch.Tensor, ...] = ()

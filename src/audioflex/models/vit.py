"""What the ViT-style families share: the block stack (AST, ElasticAST, PaSST) and, for the grid
models with prefix tokens (AST, PaSST), the ``forward`` convention and ``pool_hidden``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from audioflex.layers.block import Block
from audioflex.layers.mlp import drop_path_rates
from audioflex.models.contract import check_frames, check_pool
from audioflex.models.outputs import AudioOutput

if TYPE_CHECKING:
    from audioflex.packing import PackedBatch


def vit_blocks(depth: int, dim: int, num_heads: int, *, drop_path: float = 0.0, **block_kwargs: Any) -> nn.ModuleList:
    """``depth`` :class:`~audioflex.layers.block.Block` s of width ``dim``, drop-path rates rising
    linearly to ``drop_path`` (:func:`~audioflex.layers.mlp.drop_path_rates`); ``block_kwargs``
    (``mlp_ratio``, ``qkv_bias``, ``norm_eps``, ``attn_scale``, ``backend``) go to every block."""
    return nn.ModuleList(Block(dim, num_heads, drop_path=r, **block_kwargs) for r in drop_path_rates(drop_path, depth))


class PrefixTokenGridModel(nn.Module):
    """Base of the grid families whose token sequence starts with ``num_tokens`` CLS-like tokens.

    A subclass defines ``forward_features(spec [B, F, T], return_layers) -> (normed tokens,
    block outputs)`` and ``forward_head(tokens) -> AudioOutput``; this class adds the grid
    ``forward`` and ``pool_hidden`` of the model contract. ``frames`` are accepted for the common
    grid-model signature (their shape is checked) and ignored: these models read the padded grid,
    as their references do.
    """

    num_tokens: int

    def forward(
        self, spec: torch.Tensor, frames: torch.Tensor | None = None, return_layers: Sequence[int] = ()
    ) -> AudioOutput:
        """``spec [B, F, T]`` (``frames [B]``: ignored) -> ``AudioOutput`` with ``hidden_states``
        ``[B, num_tokens + F'T', D]`` (before the final norm) of the requested blocks, in the order
        asked for."""
        check_frames(frames, spec.shape[0], spec.device)
        feats, hidden = self.forward_features(spec, return_layers)
        return dataclasses.replace(self.forward_head(feats), hidden_states=hidden)

    def pool_hidden(
        self, hidden: torch.Tensor, batch: PackedBatch | None = None, *, pool: str = "tokens"
    ) -> torch.Tensor:
        """A block output ``[B, num_tokens + N, D]`` -> ``[B, D]``: the mean of the patch tokens
        (``pool="tokens"``) or of the prefix (CLS/distillation) tokens (``"cls"``)."""
        check_pool(pool)
        k = self.num_tokens
        return hidden[:, :k].mean(1) if pool == "cls" else hidden[:, k:].mean(1)

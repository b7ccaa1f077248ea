"""Key-mapping helpers shared by the ViT-style converters (HF AST, original AST, ElasticAST,
AST -> ElasticAST): block counting, variant names and the block dimensions of a converted state."""

from __future__ import annotations

import re
from typing import Any

import torch

__all__ = ["count_blocks", "size_name", "vit_dims"]

BLOCK_PATTERN = r"blocks\.(\d+)\."


def count_blocks(sd: dict[str, torch.Tensor], pattern: str = BLOCK_PATTERN) -> int:
    """Number of transformer blocks: one more than the largest index ``pattern``'s group matches."""
    idx = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(idx) + 1 if idx else 0


def size_name(family: str, dim: int) -> str:
    """The registered variant of ``family`` with embedding width ``dim`` (192 tiny, 384 small, else base)."""
    return {192: f"{family}_tiny", 384: f"{family}_small"}.get(dim, f"{family}_base")


def vit_dims(state: dict[str, torch.Tensor], dim: int, num_heads: int | None) -> dict[str, Any]:
    """``depth``, ``num_heads`` (default ``dim // 64``, DeiT's) and ``mlp_ratio`` of a state dict
    in audioflex's ViT block keys (``blocks.<i>.mlp.fc1.weight`` ``[hidden, dim]``)."""
    return {
        "depth": count_blocks(state),
        "num_heads": num_heads or max(1, dim // 64),
        "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / dim,
    }

"""Building blocks shared by the model families."""

from audioflex.layers.attention import BACKENDS, Attention, SeqInfo, varlen_attention
from audioflex.layers.block import Block
from audioflex.layers.mlp import DropPath, Mlp, drop_path, drop_path_rates
from audioflex.layers.patch import PatchConv
from audioflex.layers.pos_embed import (
    factorized_positions,
    grid_to_factorized,
    resample_1d,
    resample_grid,
)

__all__ = [
    "BACKENDS",
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "PatchConv",
    "SeqInfo",
    "drop_path",
    "drop_path_rates",
    "factorized_positions",
    "grid_to_factorized",
    "resample_1d",
    "resample_grid",
    "varlen_attention",
]

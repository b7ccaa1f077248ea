"""Feed-forward block and stochastic depth."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """``fc1 -> GELU -> dropout -> fc2 -> dropout``; ``[..., D] -> [..., D_out]``."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def drop_path(
    x: torch.Tensor,
    p: float,
    training: bool,
    groups: torch.Tensor | None = None,
    num_groups: int = 0,
) -> torch.Tensor:
    """Stochastic depth: zero whole samples' residual branches with probability ``p``.

    ``x`` is ``[B, ...]`` (one draw per row) or packed ``[N_total, D]`` with ``groups [N_total]``
    giving each token's clip among ``num_groups`` clips (one draw per clip).
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    if groups is None:
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
    else:
        mask = x.new_empty(num_groups).bernoulli_(keep)[groups].unsqueeze(-1)
    return x * mask / keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path`."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None, num_groups: int = 0) -> torch.Tensor:
        return drop_path(x, self.p, self.training, groups, num_groups)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(max_rate: float, depth: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``max_rate`` over ``depth`` blocks."""
    if depth <= 1:
        return [max_rate] * depth
    return [max_rate * i / (depth - 1) for i in range(depth)]

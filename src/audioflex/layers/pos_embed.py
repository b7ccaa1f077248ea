"""Absolute position embeddings: 2D grids (AST) and factorized frequency/time tables (ElasticAST,
PaSST), with resampling helpers so no input length is ever out of range."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resample_1d(table: torch.Tensor, size: int) -> torch.Tensor:
    """Linearly resample a position table ``[L, D]`` to ``[size, D]`` (``align_corners=True``)."""
    if table.shape[0] == size:
        return table
    if table.shape[0] == 1:
        return table.expand(size, -1)
    out = F.interpolate(table.t()[None], size=size, mode="linear", align_corners=True)
    return out[0].t()


def resample_grid(
    grid: torch.Tensor, old_size: tuple[int, int], new_size: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resample a flattened 2D position grid ``[old_f * old_t, D]`` (frequency-major) to
    ``[new_f * new_t, D]``. Always pass the old grid size: audio grids are not square."""
    if tuple(old_size) == tuple(new_size):
        return grid
    d = grid.shape[-1]
    img = grid.reshape(old_size[0], old_size[1], d).permute(2, 0, 1)[None]
    img = F.interpolate(img, size=new_size, mode=mode, align_corners=False)
    return img[0].permute(1, 2, 0).reshape(new_size[0] * new_size[1], d)


def grid_to_factorized(
    grid: torch.Tensor, old_size: tuple[int, int], new_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initialise factorized tables from a 2D grid ``[old_f * old_t, D]``: resample to
    ``new_size = (F, T)`` then average along each axis -> (``freq [F, D]``, ``time [T, D]``).

    The grid mean is split between the two tables so ``freq[f] + time[t]`` keeps its scale.
    """
    d = grid.shape[-1]
    g = resample_grid(grid, old_size, new_size).reshape(new_size[0], new_size[1], d)
    mean = g.mean(dim=(0, 1))
    freq = g.mean(dim=1) - mean / 2
    time = g.mean(dim=0) - mean / 2
    return freq, time


def factorized_positions(
    freq_table: torch.Tensor,
    time_table: torch.Tensor,
    coords: torch.Tensor,
    grid_sizes: tuple[tuple[int, int], ...],
    cu_seqlens: tuple[int, ...],
) -> torch.Tensor:
    """Position vectors ``[N_total, D]`` for packed tokens.

    Args:
        freq_table: ``[Lf, D]``; time_table: ``[Lt, D]``.
        coords: ``[N_total, 2]`` (freq row, time column) of each token.
        grid_sizes: per clip ``(F_i, T_i)`` patch-grid size (host ints).
        cu_seqlens: segment boundaries (host ints).

    A clip whose grid exceeds a table gets that table linearly resampled to its own size
    (there is no maximum length); other clips index the tables directly.
    """
    lf, lt = freq_table.shape[0], time_table.shape[0]
    pos = freq_table[coords[:, 0].clamp(max=lf - 1)] + time_table[coords[:, 1].clamp(max=lt - 1)]
    long = [i for i, (fi, ti) in enumerate(grid_sizes) if fi > lf or ti > lt]
    if not long:
        return pos
    pieces, start = [], 0
    for i in long:
        s, e = cu_seqlens[i], cu_seqlens[i + 1]
        fi, ti = grid_sizes[i]
        ftab = resample_1d(freq_table, fi) if fi > lf else freq_table
        ttab = resample_1d(time_table, ti) if ti > lt else time_table
        c = coords[s:e]
        pieces += [pos[start:s], ftab[c[:, 0]] + ttab[c[:, 1]]]
        start = e
    pieces.append(pos[start:])
    return torch.cat(pieces)

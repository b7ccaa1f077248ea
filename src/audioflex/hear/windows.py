"""Timestamp windows of the HEAR embedding model: which clip, which timestamps, and the waveform
samples a window centred on a timestamp sees (reflect padding at the clip edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audioflex.audio.stream import AudioReader


@dataclass
class Window:
    """Timestamps to embed: per clip, ``count`` windows centred at ``round(i * hop)`` samples."""

    clip: int
    first: int
    count: int


def window_centres(first: int, count: int, hop_samples: float) -> torch.Tensor:
    """Centre samples ``[count]`` of timestamps ``first .. first + count - 1`` (``round(i * hop)``)."""
    i = torch.arange(first, first + count, dtype=torch.float64)
    return torch.round(i * hop_samples).long()


def reflect(idx: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflect-pad sample indices (as ``F.pad(mode="reflect")``); -> (indices, valid mask)."""
    if n > 1:
        idx = torch.where(idx < 0, -idx, idx)
        idx = torch.where(idx >= n, 2 * (n - 1) - idx, idx)
    valid = (idx >= 0) & (idx < n)
    return idx.clamp(0, n - 1), valid


def gather_windows(source: AudioReader, centres: torch.Tensor, win: int) -> torch.Tensor:
    """Windows ``[len(centres), win]`` centred at ``centres`` (reflect padding at the edges, zeros
    beyond one reflection)."""
    left = win // 2
    idx = centres[:, None] - left + torch.arange(win)[None, :]
    idx, valid = reflect(idx, source.num_samples)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    data = source.read(lo, hi).float()
    out = data[idx - lo]
    return torch.where(valid, out, out.new_zeros(()))


__all__ = ["Window", "gather_windows", "reflect", "window_centres"]

"""Waveform augmentation: random gain and circular time shift of ``[T]`` / ``[B, T]`` waveforms."""

from __future__ import annotations

import torch

from audioflex.audio.augment.draws import rand


def random_gain(
    wave: torch.Tensor,
    min_db: float = -6.0,
    max_db: float = 6.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scale each clip of ``wave [B, T]`` (or ``[T]``) by a gain uniform in ``[min_db, max_db]`` dB.

    Returns a new tensor (no clipping: clamp yourself if your pipeline needs ``[-1, 1]``).
    """
    if min_db > max_db:
        raise ValueError(f"random_gain: min_db ({min_db}) must be <= max_db ({max_db})")
    single = wave.ndim == 1
    w = wave.unsqueeze(0) if single else wave
    if w.ndim != 2:
        raise ValueError(f"random_gain: expected wave [B, T] or [T], got {list(wave.shape)}")
    db = min_db + (max_db - min_db) * rand((w.shape[0],), generator, w.device).to(torch.float64)
    out = w * (10.0 ** (db / 20.0)).to(w.dtype).unsqueeze(1)
    return out[0] if single else out


def random_time_shift(
    wave: torch.Tensor, max_shift: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Circularly shift a clip ``wave [T]`` by a whole number of samples drawn uniformly from
    ``[-max_shift, max_shift]`` (keyword spotting: the word may sit anywhere in its window).

    The wrap-around keeps the clip's length and level; use it on fixed-length clips whose labels
    hold for the whole clip, never with time-aligned (strong) labels.
    """
    if max_shift < 0:
        raise ValueError(f"random_time_shift: max_shift must be >= 0 samples, got {max_shift}")
    if wave.ndim != 1:
        raise ValueError(f"random_time_shift: expected wave [T], got {list(wave.shape)}")
    if max_shift == 0 or wave.shape[0] < 2:
        return wave
    k = int(torch.randint(-max_shift, max_shift + 1, (1,), generator=generator))
    return torch.roll(wave, k)


__all__ = ["random_gain", "random_time_shift"]

"""Random crops (in seconds or frames) and random time resolution (ElasticAST's frame shifts)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from audioflex.audio.augment.draws import rand, randint

# ElasticAST's resolutions: frame shift 10·q ms, q in {1, 1.2, ..., 4}.
ELASTIC_FRAME_SHIFTS_MS: tuple[float, ...] = tuple(round(10 * (1 + 0.2 * i), 6) for i in range(16))


def sample_crop(
    total: float,
    length: float | tuple[float, float],
    *,
    generator: torch.Generator | None = None,
    integer: bool = True,
) -> tuple[float, float]:
    """A random window ``(start, size)`` of a clip of ``total`` units (samples, frames or seconds).

    ``length`` is a fixed size or a range ``(min, max)``: size ~ U[min, min(total, max)]
    (ElasticAST: ``(384, 3072)`` frames). Clips shorter than the size are kept whole
    (``start=0, size=total``). ``integer=True`` draws whole units (samples/frames); otherwise
    continuous (seconds, e.g. for ``load_audio(offset=start, duration=size)``).
    """
    lo, hi = (length, length) if not isinstance(length, (tuple, list)) else length
    if lo <= 0 or hi < lo:
        raise ValueError(f"sample_crop: need 0 < min <= max, got length={length}")
    if total <= 0:
        raise ValueError(f"sample_crop: total must be > 0, got {total}")
    hi = min(hi, total)
    if lo >= total:
        return 0.0 if not integer else 0, total
    u = rand((2,), generator, torch.device("cpu")).tolist()
    if integer:
        lo_i, hi_i, total_i = int(math.ceil(lo)), int(math.floor(hi)), int(total)
        size = lo_i + min(int(u[0] * (hi_i - lo_i + 1)), hi_i - lo_i)
        start = min(int(u[1] * (total_i - size + 1)), total_i - size)
        return start, size
    size = lo + u[0] * (hi - lo)
    return u[1] * (total - size), size


def random_crop(
    x: torch.Tensor,
    length: int | tuple[int, int],
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Randomly crop the time axis of one clip ``[..., T]`` -> (crop ``[..., size]``, start).

    ``length``: a fixed size or ``(min, max)`` drawn as in :func:`sample_crop`; shorter clips are
    returned whole.
    """
    total = x.shape[-1]
    if total == 0:
        raise ValueError("random_crop: empty clip")
    start, size = sample_crop(total, length, generator=generator, integer=True)
    return x[..., int(start) : int(start) + int(size)], int(start)


def frames_for(seconds: float, frame_shift_ms: float) -> int:
    """Number of frame shifts in ``seconds`` (rounded): ``frames_for(10.24, 10) == 1024``."""
    if frame_shift_ms <= 0:
        raise ValueError(f"frame_shift_ms must be > 0, got {frame_shift_ms}")
    return int(round(seconds * 1000.0 / frame_shift_ms))




def elastic_frame_shifts(
    base_ms: float = 10.0, max_factor: float = 4.0, step: float = 0.2
) -> tuple[float, ...]:
    """Shifts ``base_ms · q``, ``q = 1, 1 + step, ..., max_factor`` (ElasticAST: 10..40 ms)."""
    if base_ms <= 0 or step <= 0 or max_factor < 1:
        raise ValueError(
            f"elastic_frame_shifts: bad base_ms={base_ms}, max_factor={max_factor}, step={step}"
        )
    n = int(math.floor((max_factor - 1) / step + 1e-9)) + 1
    return tuple(round(base_ms * (1 + step * i), 6) for i in range(n))


def sample_frame_shift(
    choices: Sequence[float] = ELASTIC_FRAME_SHIFTS_MS, *, generator: torch.Generator | None = None
) -> float:
    """Random resolution: one frame shift (ms) uniformly from ``choices``.

    Build the front end for it with ``config.replace(frame_shift_ms=shift)``; for the same span,
    target lengths scale as ``1 / q`` (1024 frames at 10 ms -> 512 at 20 ms).
    """
    if len(choices) == 0:
        raise ValueError("sample_frame_shift: choices is empty")
    if any(c <= 0 for c in choices):
        raise ValueError(f"sample_frame_shift: frame shifts must be > 0, got {list(choices)}")
    return float(choices[randint(len(choices) - 1, generator)])


def sample_frame_shifts(
    batch: int,
    choices: Sequence[float] = ELASTIC_FRAME_SHIFTS_MS,
    *,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Per-clip random resolution: ``batch`` frame shifts (ms) from ``choices``."""
    return [sample_frame_shift(choices, generator=generator) for _ in range(batch)]


__all__ = ["ELASTIC_FRAME_SHIFTS_MS", "elastic_frame_shifts", "frames_for", "random_crop", "sample_crop",
           "sample_frame_shift", "sample_frame_shifts"]

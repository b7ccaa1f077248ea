"""Waveform augmentation: random gain, circular time shift, speed perturbation, background-noise
mixing and overlaying one recording on another, of ``[T]`` / ``[B, T]`` waveforms."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from audioflex.audio.augment.draws import rand
from audioflex.audio.io import resample

# speed factors are applied as the integer rate ratio round(factor * SPEED_BASE) / SPEED_BASE
SPEED_BASE = 10_000


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


def speed_factors(speed: Sequence[float] | None, name: str = "speed") -> tuple[float, float] | None:
    """``speed`` checked: ``(low, high)`` factors with ``0 < low <= high``, or None when off (empty).

    Raises:
        ValueError: naming ``name`` (e.g. ``augment.speed``), with an example of a good value.
    """
    if not speed:
        return None
    if (len(speed) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in speed)
            or not 0 < speed[0] <= speed[1]):
        raise ValueError(f"{name}: expected [low, high] speed factors with 0 < low <= high "
                         f"(e.g. [0.9, 1.1]), got {list(speed)}")
    return float(speed[0]), float(speed[1])


def change_speed(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """``wave [T]`` played ``factor`` times faster: tempo and pitch change together, as a speaker
    who talks faster and higher (speed perturbation, Ko et al. 2015). Returns ``[~T / factor]``
    samples (soxr HQ resampling; the factor is rounded to 1e-4). ``factor`` 1 returns ``wave``.
    """
    if not factor > 0:
        raise ValueError(f"change_speed: factor must be > 0, got {factor}")
    if wave.ndim != 1:
        raise ValueError(f"change_speed: expected wave [T], got {list(wave.shape)}")
    rate = round(factor * SPEED_BASE)
    if rate == SPEED_BASE or wave.shape[0] < 2:
        return wave
    return resample(wave, rate, SPEED_BASE)


def add_background(
    wave: torch.Tensor,
    noises: Sequence[torch.Tensor],
    snr_db: tuple[float, float] = (0.0, 20.0),
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``wave [T]`` plus a random excerpt of one of ``noises`` (each ``[N_i]``, same sample rate) at a
    signal-to-noise ratio uniform in ``snr_db`` (dB, of the clip's RMS over the noise excerpt's RMS).

    The excerpt starts at a random sample; a noise shorter than the clip is tiled. A silent clip
    (RMS 0) gets the noise at its own level scaled by ``10 ** (-snr / 20)``; a silent excerpt adds
    nothing. Returns a new tensor of ``wave``'s dtype (no clipping).
    """
    if wave.ndim != 1:
        raise ValueError(f"add_background: wave must be [T], got shape {tuple(wave.shape)}")
    if not noises:
        raise ValueError("add_background: no noise recordings given")
    lo, hi = float(snr_db[0]), float(snr_db[1])
    if not lo <= hi:
        raise ValueError(f"add_background: snr_db must be [low, high] with low <= high, got {list(snr_db)}")
    u = rand((3,), generator, torch.device("cpu")).tolist()
    noise = noises[min(int(u[0] * len(noises)), len(noises) - 1)]
    if noise.ndim != 1 or noise.numel() == 0:
        raise ValueError(f"add_background: every noise must be a non-empty [N] tensor, got {tuple(noise.shape)}")
    t, n = wave.shape[0], noise.numel()
    start = min(int(u[1] * n), n - 1)
    if start + t <= n:  # the usual case: a slice, no copy of the whole recording
        excerpt = noise[start : start + t].to(torch.float64)
    else:  # wrap around (tiled when the noise is shorter than the clip)
        idx = (torch.arange(t) + start) % n
        excerpt = noise[idx].to(torch.float64)
    return overlay(wave, excerpt, 0, lo + (hi - lo) * u[2])



def overlay(wave: torch.Tensor, other: torch.Tensor, start: int, snr_db: float) -> torch.Tensor:
    """``wave [T]`` with ``other [N]`` added from sample ``start`` (``0 <= start``, ``start + N <= T``),
    scaled so that ``wave``'s RMS over ``other``'s RMS is ``snr_db`` dB.

    A silent ``wave`` gets ``other`` at its own level scaled by ``10 ** (-snr_db / 20)``; a silent
    ``other`` adds nothing. Returns a new tensor of ``wave``'s dtype (no clipping).
    """
    if wave.ndim != 1 or other.ndim != 1:
        raise ValueError(f"overlay: wave and other must be [T] and [N], got {tuple(wave.shape)}, {tuple(other.shape)}")
    t, n = wave.shape[0], other.shape[0]
    if not (start >= 0 and start + n <= t):
        raise ValueError(f"overlay: other ({n} samples from {start}) must lie inside wave ({t} samples)")
    other64 = other.to(torch.float64)
    o_rms = float(other64.pow(2).mean().sqrt()) if n else 0.0
    out = wave.to(torch.float64).clone()
    if o_rms == 0.0:
        return out.to(wave.dtype)
    w_rms = float(out.pow(2).mean().sqrt())
    out[start : start + n] += (w_rms if w_rms > 0 else o_rms) / o_rms * 10.0 ** (-float(snr_db) / 20.0) * other64
    return out.to(wave.dtype)


__all__ = [
    "SPEED_BASE", "add_background", "change_speed", "overlay", "random_gain", "random_time_shift", "speed_factors",
]

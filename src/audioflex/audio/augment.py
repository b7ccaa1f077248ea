"""Train-time augmentation: SpecAugment, mixup, gain, random crops and random resolution.

All randomness comes from an explicit ``torch.Generator`` (CPU generators work for tensors on any
device: draws are made on the generator's device and moved), so the same seed gives the same
output. Nothing here is hidden inside a front end or a model; token dropping belongs to the model.

Shapes: spectrograms ``[B, F, T]`` (frequency before time) with valid frame counts ``[B]``, or
lists of ``[F, T_i]``; waveforms ``[B, T]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

# ElasticAST's resolutions: frame shift 10·q ms, q in {1, 1.2, ..., 4}.
ELASTIC_FRAME_SHIFTS_MS: tuple[float, ...] = tuple(round(10 * (1 + 0.2 * i), 6) for i in range(16))


def _rand(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) draws made on the generator's device (CPU by default), moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(tuple(shape), generator=generator, device=gen_device).to(device)


def _randint(high: int, generator: torch.Generator | None) -> int:
    """One integer uniform in ``[0, high]`` (inclusive)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, high + 1, (1,), generator=generator, device=gen_device))


def _check_lengths(
    lengths: torch.Tensor | None, batch: int, total: int, where: str
) -> torch.Tensor | None:
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (batch,):
        raise ValueError(f"{where}: lengths must have shape [{batch}], got {list(lengths.shape)}")
    if bool((lengths < 0).any()) or bool((lengths > total).any()):
        raise ValueError(f"{where}: lengths must be in [0, {total}], got {lengths.tolist()}")
    return lengths


# ------------------------------------------------------------------------------------ SpecAugment


def _stripe_mask(
    batch: int,
    size: int,
    valid: torch.Tensor,
    max_width: torch.Tensor,
    num: int,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Bool mask ``[B, size]``: ``num`` stripes per row, width U{0..max_width}, inside ``valid``."""
    mask = torch.zeros(batch, size, dtype=torch.bool, device=device)
    if num == 0:
        return mask
    u = _rand((2, batch, num), generator, device)
    valid = valid.to(device).view(batch, 1)
    width = torch.minimum(
        torch.floor(u[0] * (max_width.to(device).view(batch, 1) + 1)), valid.to(u.dtype)
    )
    start = torch.floor(u[1] * (valid - width + 1).to(u.dtype))
    pos = torch.arange(size, device=device).view(1, 1, size)
    inside = (pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))  # [B, num, size]
    return inside.any(dim=1)


class SpecAugment(nn.Module):
    """SpecAugment frequency and time masking, per clip, inside each clip's valid frames.

    Time mask widths are a duration: ``time_mask_param`` is in ``time_unit`` ``"frames"`` (counted
    at the reference ``frame_shift_ms``) or ``"ms"``; at another frame shift the maximum width in
    frames scales so the masked duration stays the same (ElasticAST: 192 frames at 10 ms -> 96
    frames at 20 ms). Widths are drawn uniformly in ``0..max``; masked cells get ``mask_value``
    (0 = the mean of a normalised spectrogram).

    Args:
        freq_mask_param: maximum frequency-mask width in bins (0: none).
        time_mask_param: maximum time-mask width, in ``time_unit`` (0: none).
        num_freq_masks, num_time_masks: stripes per clip (HTS-AT: 2 and 2; AST/ElasticAST: 1 and 1).
        time_unit: ``"frames"`` or ``"ms"``.
        frame_shift_ms: the reference frame shift, and the default shift in ``forward``.
        mask_value: fill value.
    """

    def __init__(
        self,
        freq_mask_param: int = 0,
        time_mask_param: float = 0,
        *,
        num_freq_masks: int = 1,
        num_time_masks: int = 1,
        time_unit: str = "frames",
        frame_shift_ms: float = 10.0,
        mask_value: float = 0.0,
    ) -> None:
        super().__init__()
        if time_unit not in ("frames", "ms"):
            raise ValueError(f"SpecAugment: time_unit must be 'frames' or 'ms', got {time_unit!r}")
        if freq_mask_param < 0 or time_mask_param < 0 or num_freq_masks < 0 or num_time_masks < 0:
            raise ValueError("SpecAugment: mask parameters and counts must be >= 0")
        if frame_shift_ms <= 0:
            raise ValueError(f"SpecAugment: frame_shift_ms must be > 0, got {frame_shift_ms}")
        self.freq_mask_param = int(freq_mask_param)
        self.num_freq_masks = int(num_freq_masks)
        self.num_time_masks = int(num_time_masks)
        self.frame_shift_ms = float(frame_shift_ms)
        self.time_mask_ms = float(time_mask_param) * (
            self.frame_shift_ms if time_unit == "frames" else 1.0
        )
        self.mask_value = float(mask_value)

    def extra_repr(self) -> str:
        return (
            f"freq_mask_param={self.freq_mask_param}, time_mask_ms={self.time_mask_ms:g}, "
            f"num_freq_masks={self.num_freq_masks}, num_time_masks={self.num_time_masks}, "
            f"frame_shift_ms={self.frame_shift_ms:g}, mask_value={self.mask_value:g}"
        )

    def max_time_width(self, frame_shift_ms: float | torch.Tensor | None = None) -> torch.Tensor:
        """Maximum time-mask width in frames at ``frame_shift_ms`` (scalar or ``[B]``), rounded."""
        shift = torch.as_tensor(
            self.frame_shift_ms if frame_shift_ms is None else frame_shift_ms, dtype=torch.float64
        )
        if bool((shift <= 0).any()):
            raise ValueError(f"SpecAugment: frame_shift_ms must be > 0, got {shift.tolist()}")
        return torch.round(self.time_mask_ms / shift).to(torch.long)

    def masks(
        self,
        shape: Sequence[int],
        lengths: torch.Tensor | None = None,
        *,
        frame_shift_ms: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw masks for a ``[B, F, T]`` batch -> (freq ``[B, F]``, time ``[B, T]``), bool."""
        batch, n_freq, n_time = shape
        device = torch.device(device)
        lengths = _check_lengths(lengths, batch, n_time, "SpecAugment")
        valid_t = torch.full((batch,), n_time) if lengths is None else lengths.cpu()
        t_max = self.max_time_width(frame_shift_ms)
        if t_max.ndim > 1 or (t_max.ndim == 1 and t_max.shape[0] not in (1, batch)):
            raise ValueError(
                f"SpecAugment: frame_shift_ms must be a scalar or [{batch}], "
                f"got {list(t_max.shape)}"
            )
        t_max = t_max.expand(batch)
        f_mask = _stripe_mask(
            batch,
            n_freq,
            torch.full((batch,), n_freq),
            torch.full((batch,), self.freq_mask_param),
            self.num_freq_masks,
            generator,
            device,
        )
        t_mask = _stripe_mask(batch, n_time, valid_t, t_max, self.num_time_masks, generator, device)
        return f_mask, t_mask

    def forward(
        self,
        spec: torch.Tensor | list[torch.Tensor],
        lengths: torch.Tensor | None = None,
        *,
        frame_shift_ms: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Mask ``spec [B, F, T]`` (valid frames ``lengths [B]``) or a list of ``[F, T_i]``.

        ``frame_shift_ms`` (scalar or per clip ``[B]``) is the shift the spectrograms were made
        with (default: the reference). Returns a new tensor (or list); padding is left untouched.
        """
        if isinstance(spec, (list, tuple)):
            if not spec:
                return []
            shifts = torch.as_tensor(
                self.frame_shift_ms if frame_shift_ms is None else frame_shift_ms
            )
            shifts = shifts.expand(len(spec)) if shifts.ndim == 0 else shifts
            if shifts.shape != (len(spec),):
                raise ValueError(
                    f"SpecAugment: frame_shift_ms must be a scalar or have {len(spec)} values"
                )
            out = []
            for x, s in zip(spec, shifts):
                if x.ndim != 2:
                    raise ValueError(
                        f"SpecAugment: list items must be [F, T_i], got {list(x.shape)}"
                    )
                out.append(
                    self.forward(x.unsqueeze(0), frame_shift_ms=s.reshape(1), generator=generator)[
                        0
                    ]
                )
            return out
        if spec.ndim != 3:
            raise ValueError(f"SpecAugment: expected spec [B, F, T], got shape {list(spec.shape)}")
        f_mask, t_mask = self.masks(
            spec.shape,
            lengths,
            frame_shift_ms=frame_shift_ms,
            generator=generator,
            device=spec.device,
        )
        mask = f_mask.unsqueeze(2) | t_mask.unsqueeze(1)
        if lengths is not None:
            valid = torch.arange(spec.shape[2], device=spec.device) < lengths.to(spec.device).view(
                -1, 1
            )
            mask = mask & valid.unsqueeze(1)
        return spec.masked_fill(mask, self.mask_value)


# ----------------------------------------------------------------------------------------- mixup


def sample_beta(
    alpha: float,
    size: int,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``size`` draws of Beta(alpha, alpha), float32 ``[size]``, reproducible from ``generator``."""
    if alpha <= 0:
        raise ValueError(f"mixup: alpha must be > 0, got {alpha}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device))
    lam = np.random.default_rng(seed).beta(alpha, alpha, size=size)
    return torch.as_tensor(lam, dtype=torch.float32, device=device)


def _targets(y: torch.Tensor, batch: int, num_classes: int | None) -> torch.Tensor:
    if y.shape[0] != batch:
        raise ValueError(f"mixup: {y.shape[0]} targets for a batch of {batch}")
    if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8) and y.ndim == 1:
        if num_classes is None:
            raise ValueError(
                "mixup: class-index targets [B] need num_classes (or pass one-hot [B, C])"
            )
        return nn.functional.one_hot(y.long(), num_classes).float()
    if y.ndim != 2:
        raise ValueError(
            f"mixup: targets must be class indices [B] or (multi-)hot [B, C], got {list(y.shape)}"
        )
    return y.float() if not y.is_floating_point() else y


def mixup(
    x: torch.Tensor | list[torch.Tensor],
    y: torch.Tensor,
    *,
    alpha: float = 0.5,
    lengths: torch.Tensor | None = None,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup with a per-sample ``λ ~ Beta(alpha, alpha)`` and a random permutation of the batch.

    ``x_i' = λ_i x_i + (1 - λ_i) x_perm(i)`` and ``y_i' = λ_i y_i + (1 - λ_i) y_perm(i)``, for
    multi-hot (BCE) or one-hot (CE; class indices ``[B]`` are one-hot encoded with
    ``num_classes``) targets. ``x`` is ``[B, ..., T]`` (spectrograms ``[B, F, T]`` or waveforms
    ``[B, T]``) or a list of ``[..., T_i]``.

    Variable lengths (``lengths [B]`` of a padded batch, or a list): **every clip keeps its own
    length** (so token counts planned for packing stay valid). A partner longer than the clip is
    cropped to the clip's length at a random offset; a shorter partner is mixed in at a random
    offset, over the overlap only — outside it the clip is left unmixed. The target is still
    mixed with the full ``λ`` (clip-level labels: the partner's sound is present). Padding is left
    untouched. Returns ``(x_mixed, y_mixed [B, C] float, lam [B], perm [B])``.
    """
    is_list = isinstance(x, (list, tuple))
    batch = len(x) if is_list else x.shape[0]
    if batch == 0:
        raise ValueError("mixup: empty batch")
    targets = _targets(y, batch, num_classes)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(batch, generator=generator, device=gen_device)
    lam = sample_beta(alpha, batch, generator)
    y_mixed = _mix(targets, targets[perm.to(targets.device)], lam.to(targets.device))
    if not is_list and lengths is None:
        lam_x = lam.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return lam_x * x + (1 - lam_x) * x[perm.to(x.device)], y_mixed, lam, perm
    if is_list:
        clips = list(x)
        lens = [c.shape[-1] for c in clips]
    else:
        lengths = _check_lengths(lengths, batch, x.shape[-1], "mixup")
        lens = [int(n) for n in lengths.tolist()]
        clips = [x[i, ..., : lens[i]] for i in range(batch)]
    mixed = []
    for i in range(batch):
        j = int(perm[i])
        a, b, n, m = clips[i], clips[j], lens[i], lens[j]
        lam_i = float(lam[i])
        if m >= n:
            off = _randint(m - n, generator)
            mixed.append(lam_i * a + (1 - lam_i) * b[..., off : off + n])
        else:
            off = _randint(n - m, generator)
            out = a.clone()
            out[..., off : off + m] = lam_i * a[..., off : off + m] + (1 - lam_i) * b
            mixed.append(out)
    if is_list:
        return mixed, y_mixed, lam, perm
    out = x.clone()
    for i in range(batch):
        out[i, ..., : lens[i]] = mixed[i]
    return out, y_mixed, lam, perm


def _mix(a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    lam = lam.to(a.dtype).view(-1, *([1] * (a.ndim - 1)))
    return lam * a + (1 - lam) * b


class Mixup(nn.Module):
    """Module form of :func:`mixup` (``alpha``, ``num_classes`` fixed; see there)."""

    def __init__(self, alpha: float = 0.5, num_classes: int | None = None) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"Mixup: alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.num_classes = num_classes

    def forward(
        self,
        x: torch.Tensor | list[torch.Tensor],
        y: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        return mixup(
            x,
            y,
            alpha=self.alpha,
            lengths=lengths,
            num_classes=self.num_classes,
            generator=generator,
        )


# ---------------------------------------------------------------------------------- waveforms


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
    db = min_db + (max_db - min_db) * _rand((w.shape[0],), generator, w.device).to(torch.float64)
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
    u = _rand((2,), generator, torch.device("cpu")).tolist()
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


# --------------------------------------------------------------------------------- resolution


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
    return float(choices[_randint(len(choices) - 1, generator)])


def sample_frame_shifts(
    batch: int,
    choices: Sequence[float] = ELASTIC_FRAME_SHIFTS_MS,
    *,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Per-clip random resolution: ``batch`` frame shifts (ms) from ``choices``."""
    return [sample_frame_shift(choices, generator=generator) for _ in range(batch)]


__all__ = [
    "ELASTIC_FRAME_SHIFTS_MS",
    "Mixup",
    "SpecAugment",
    "elastic_frame_shifts",
    "frames_for",
    "mixup",
    "random_crop",
    "random_gain",
    "sample_beta",
    "sample_crop",
    "sample_frame_shift",
    "sample_frame_shifts",
]

"""SpecAugment: frequency and time stripes masked over ``[B, F, T]`` spectrograms (valid frames only)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from audioflex.audio.augment.draws import check_lengths, rand


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
    u = rand((2, batch, num), generator, device)
    valid = valid.to(device).view(batch, 1)
    width = torch.minimum(
        torch.floor(u[0] * (max_width.to(device).view(batch, 1) + 1)), valid.to(u.dtype)
    )
    start = torch.floor(u[1] * (valid - width + 1).to(u.dtype))
    pos = torch.arange(size, device=device).view(1, 1, size)
    inside = (pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))  # [B, num, size]
    return inside.any(dim=1)


def _bin_means(spec: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Each clip's mean of each frequency bin over its valid frames: ``[B, F, T]`` (+ ``[B, T]``
    bool) -> ``[B, F, 1]``."""
    if valid is None:
        return spec.mean(dim=2, keepdim=True)
    w = valid.unsqueeze(1).to(spec.dtype)
    return (spec * w).sum(dim=2, keepdim=True) / w.sum(dim=2, keepdim=True).clamp(min=1)


class SpecAugment(nn.Module):
    """SpecAugment frequency and time masking, per clip, inside each clip's valid frames.

    Time mask widths are a duration: ``time_mask_param`` is in ``time_unit`` ``"frames"`` (counted
    at the reference ``frame_shift_ms``) or ``"ms"``; at another frame shift the maximum width in
    frames scales so the masked duration stays the same (ElasticAST: 192 frames at 10 ms -> 96
    frames at 20 ms). Widths are drawn uniformly in ``0..max``; masked cells get ``mask_value``
    (0 = the mean of a normalised spectrogram), or with ``mask_value=None`` each clip's own mean
    of that frequency bin over its valid frames (for un-normalised dB spectrograms, where 0 would
    be a loud broadband stripe; HTS-AT's reference masks after its BatchNorm, i.e. with the mean).

    Args:
        freq_mask_param: maximum frequency-mask width in bins (0: none).
        time_mask_param: maximum time-mask width, in ``time_unit`` (0: none).
        num_freq_masks, num_time_masks: stripes per clip (HTS-AT: 2 and 2; AST/ElasticAST: 1 and 1).
        time_unit: ``"frames"`` or ``"ms"``.
        frame_shift_ms: the reference frame shift, and the default shift in ``forward``.
        mask_value: fill value, or None for the clip's per-bin mean (see above).
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
        mask_value: float | None = 0.0,
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
        self.mask_value = None if mask_value is None else float(mask_value)

    def extra_repr(self) -> str:
        return (
            f"freq_mask_param={self.freq_mask_param}, time_mask_ms={self.time_mask_ms:g}, "
            f"num_freq_masks={self.num_freq_masks}, num_time_masks={self.num_time_masks}, "
            f"frame_shift_ms={self.frame_shift_ms:g}, "
            f"mask_value={'clip mean' if self.mask_value is None else format(self.mask_value, 'g')}"
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
        lengths = check_lengths(lengths, batch, n_time, "SpecAugment")
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
        valid = None
        if lengths is not None:
            valid = torch.arange(spec.shape[2], device=spec.device) < lengths.to(spec.device).view(
                -1, 1
            )
            mask = mask & valid.unsqueeze(1)
        if self.mask_value is not None:
            return spec.masked_fill(mask, self.mask_value)
        return torch.where(mask, _bin_means(spec, valid), spec)


__all__ = ["SpecAugment"]

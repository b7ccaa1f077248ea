"""Mixup of spectrograms (or waveforms) and their targets, with a seeded Beta draw."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from audioflex.audio.augment.draws import check_lengths, randint


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
        lengths = check_lengths(lengths, batch, x.shape[-1], "mixup")
        lens = [int(n) for n in lengths.tolist()]
        clips = [x[i, ..., : lens[i]] for i in range(batch)]
    mixed = []
    for i in range(batch):
        j = int(perm[i])
        a, b, n, m = clips[i], clips[j], lens[i], lens[j]
        lam_i = float(lam[i])
        if m >= n:
            off = randint(m - n, generator)
            mixed.append(lam_i * a + (1 - lam_i) * b[..., off : off + n])
        else:
            off = randint(n - m, generator)
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


__all__ = ["Mixup", "mixup", "sample_beta"]

"""Random draws from an explicit generator (made on its device, moved), and the lengths check shared by
the augmentations."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def rand(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) draws made on the generator's device (CPU by default), moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(tuple(shape), generator=generator, device=gen_device).to(device)


def randint(high: int, generator: torch.Generator | None) -> int:
    """One integer uniform in ``[0, high]`` (inclusive)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, high + 1, (1,), generator=generator, device=gen_device))


def check_lengths(
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


__all__ = ["check_lengths", "rand", "randint"]

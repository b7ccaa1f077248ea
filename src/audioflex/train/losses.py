"""Per-clip losses (summed by the loop and divided by the global clip count)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_clip_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Loss of each clip ``[B]`` from ``logits [B, C]``.

    ``kind="bce"``: binary cross-entropy averaged over classes, targets ``[B, C]`` in [0, 1]
    (multi-hot or mixed). ``kind="ce"``: cross-entropy with class indices ``[B]`` or soft targets
    ``[B, C]`` (one-hot, or mixed by mixup).
    """
    logits = logits.float()
    if kind == "bce":
        if targets.shape != logits.shape:
            raise ValueError(f"bce loss: targets {tuple(targets.shape)} must match logits {tuple(logits.shape)}")
        return F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none").mean(dim=1)
    if kind == "ce":
        if targets.ndim == 1:
            return F.cross_entropy(logits, targets.long(), reduction="none")
        return -(targets.float() * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    raise ValueError(f"loss: unknown kind {kind!r}; use 'bce' or 'ce'")


__all__ = ["per_clip_loss"]

"""Per-clip losses (summed by the loop and divided by the global clip count)."""

from __future__ import annotations

from typing import Any

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


def sed_per_clip_loss(
    out: Any,
    batch: Any,
    clip_loss: torch.Tensor,
    *,
    frame_weight: float,
    weak_frame_loss: bool = False,
    weak_pool: str = "mean",
) -> torch.Tensor:
    """Per-clip loss ``[B]`` of strong-label training (``audioflex.evaluate.detection.sed_loss``).

    Strong clips (``batch.strong``): ``(1 - w) * clip BCE + w * frame BCE`` over their valid steps
    (``batch.frame_mask``) against ``batch.frame_targets [B, S, C]``. Weak clips: ``clip_loss``
    (the clip BCE ``[B]``), or with ``weak_frame_loss`` the clip BCE mixed with the BCE of the
    frame logits pooled over time. Every term is computed for every clip and selected per clip,
    so all parameters take part in each backward (DDP needs it) and no host sync happens.
    """
    from audioflex.evaluate.detection import sed_loss

    if out.frame_logits is None:
        raise ValueError("strong-label training: the model returned no frame_logits (no frame-wise head)")
    strong = sed_loss(
        out,
        batch.targets,
        batch.frame_targets,
        valid_mask=batch.frame_mask,
        frame_weight=frame_weight,
        reduction="none",
    )
    weak = clip_loss
    if weak_frame_loss:
        weak = sed_loss(
            out,
            batch.targets,
            None,
            valid_mask=batch.frame_mask,
            frame_weight=frame_weight,
            weak_pool=weak_pool,
            reduction="none",
        )
    return torch.where(batch.strong, strong, weak)


__all__ = ["per_clip_loss", "sed_per_clip_loss"]

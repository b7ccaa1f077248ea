"""Training losses: per-clip clip losses (summed by the loop and divided by the global clip
count) and the sound-event-detection losses of frame-wise heads (frame BCE, clip + frame mix).

Frame logits are ``[B, T', C]``; ``valid_mask [B, T']`` marks each clip's real steps
(:func:`steps_valid_mask` for fixed-grid models, :func:`packed_frame_mask` for packed ones, or the
datasets' ``Batch.frame_mask``); frame targets come from :mod:`audioflex.data.targets`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audioflex.data.datasets import Batch
from audioflex.models.outputs import AudioOutput
from audioflex.packing import PackedBatch


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
    out: AudioOutput,
    batch: Batch,
    clip_loss: torch.Tensor,
    *,
    frame_weight: float,
    weak_frame_loss: bool = False,
    weak_pool: str = "mean",
) -> torch.Tensor:
    """Per-clip loss ``[B]`` of strong-label training (:func:`sed_loss`).

    Strong clips (``batch.strong``): ``(1 - w) * clip BCE + w * frame BCE`` over their valid steps
    (``batch.frame_mask``) against ``batch.frame_targets [B, S, C]``; their clip target is the max of
    those frame targets, i.e. the events inside the (possibly cropped) audio the model saw, not every
    label of the record (a 10 s crop of a 30 s clip may hold none of an event). Weak clips: ``clip_loss``
    (the clip BCE ``[B]``), or with ``weak_frame_loss`` the clip BCE mixed with the BCE of the
    frame logits pooled over time. Every term is computed for every clip and selected per clip,
    so all parameters take part in each backward (DDP needs it) and no host sync happens.
    """
    if out.frame_logits is None:
        raise ValueError("strong-label training: the model returned no frame_logits (no frame-wise head)")
    strong = sed_loss(
        out,
        None,  # the clip targets of what was seen: max of the valid frame targets
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


def steps_valid_mask(frames: torch.Tensor, step_frames: int, num_steps: int) -> torch.Tensor:
    """Valid frame-logit steps ``[B, num_steps]`` (bool) of inputs with ``frames [B]`` real
    spectrogram frames (e.g. HTS-AT: ``step_frames=32``, ``num_steps=32``): a ``valid_mask`` for
    :func:`frame_bce` / :func:`sed_loss` of a fixed-grid model."""
    steps = torch.div(frames + step_frames - 1, step_frames, rounding_mode="floor").clamp(min=1)
    return torch.arange(num_steps, device=frames.device)[None, :] < steps[:, None]


def packed_frame_mask(
    batch: PackedBatch, device: torch.device | str | None = None, *, steps_per_column: int = 1
) -> torch.Tensor:
    """Steps of whole columns ``[B, K * T'_max]`` (bool) of a ``PackedBatch``'s frame logits, ``K =
    steps_per_column`` (ElasticAST's ``frame_substeps``): a ``valid_mask`` for :func:`frame_bce` /
    :func:`sed_loss` of a packed model (the steps of a last column past the clip's end count as
    valid here; ``Batch.frame_mask`` excludes them)."""
    cols = torch.tensor([g[1] for g in batch.grid_sizes]) * steps_per_column
    mask = torch.arange(int(cols.max()))[None, :] < cols[:, None]
    return mask.to(device if device is not None else batch.patches.device)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none' (per clip), got {reduction!r}")


def frame_bce(
    frame_logits: torch.Tensor,
    frame_targets: torch.Tensor,
    valid_mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Frame-level BCE with logits over valid frames and classes.

    Args:
        frame_logits: ``[B, T', C]``.
        frame_targets: ``[B, T', C]`` in [0, 1].
        valid_mask: ``[B, T']`` bool (padding steps excluded); None = all valid.
        reduction: ``mean`` (scalar: mean over all valid frames and classes) or ``none``
            (``[B]``: each clip's mean over its valid frames and classes).
    """
    _check_reduction(reduction)
    if frame_targets.shape != frame_logits.shape:
        raise ValueError(
            f"frame_targets {tuple(frame_targets.shape)} must match frame_logits {tuple(frame_logits.shape)}; "
            "rasterise targets at the model's frame hop and step count (data.targets.clip_frame_targets)"
        )
    loss = F.binary_cross_entropy_with_logits(frame_logits.float(), frame_targets.float(), reduction="none")
    if valid_mask is None:
        valid_mask = torch.ones(loss.shape[:2], dtype=torch.bool, device=loss.device)
    m = valid_mask.to(loss.dtype)[..., None]
    if reduction == "none":
        return (loss * m).sum((1, 2)) / (m.sum((1, 2)) * loss.shape[-1]).clamp_min(1.0)
    return (loss * m).sum() / (m.sum() * loss.shape[-1]).clamp_min(1.0)


def _pool_frames(frame_logits: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "mean":
        m = mask.to(frame_logits.dtype)[..., None]
        return (frame_logits * m).sum(1) / m.sum(1).clamp_min(1.0)
    if how == "max":
        return frame_logits.masked_fill(~mask[..., None], float("-inf")).amax(1)
    raise ValueError(f"weak_pool must be 'mean' or 'max', got {how!r}")


def sed_loss(
    out: AudioOutput,
    clip_targets: torch.Tensor | None,
    frame_targets: torch.Tensor | None = None,
    *,
    valid_mask: torch.Tensor | None = None,
    frame_weight: float = 0.5,
    weak_pool: str = "mean",
    reduction: str = "mean",
) -> torch.Tensor:
    """Clip BCE mixed with a frame term: ``(1 - w) * clip_bce + w * frame_term``.

    - strong labels (``frame_targets [B, T', C]`` given): ``frame_term`` = :func:`frame_bce`;
    - weak labels only: ``frame_term`` = BCE of the frame logits pooled over valid steps
      (``weak_pool`` ``mean`` as HTS-AT, or ``max``) against ``clip_targets`` — this trains a
      frame head whose clip logits come from another head (ElasticAST).

    ``clip_targets [B, C]`` may be None when frame targets are given (then their max over time).
    ``valid_mask [B, T']``: default = steps whose logits are not the ElasticAST padding value.
    ``reduction``: ``mean`` (scalar) or ``none`` (per clip ``[B]``, for loops that sum per-clip
    losses and divide by the global clip count).
    """
    _check_reduction(reduction)
    if out.frame_logits is None:
        raise ValueError("the model output has no frame_logits: sed_loss needs a frame-wise head")
    if not 0.0 <= frame_weight <= 1.0:
        raise ValueError(f"frame_weight must be in [0, 1], got {frame_weight}")
    fl = out.frame_logits
    if valid_mask is None:
        valid_mask = fl.detach()[..., 0] > -5.0e3  # ElasticAST pads with -1e4
    if clip_targets is None:
        if frame_targets is None:
            raise ValueError("sed_loss needs clip_targets, frame_targets or both")
        clip_targets = (frame_targets * valid_mask[..., None].to(frame_targets.dtype)).amax(1)
    clip_loss = F.binary_cross_entropy_with_logits(
        out.clip_logits.float(), clip_targets.float(), reduction="none"
    ).mean(-1)
    if frame_targets is not None:
        frame_term = frame_bce(fl, frame_targets, valid_mask, reduction=reduction)
    else:
        pooled = _pool_frames(fl.float(), valid_mask, weak_pool)
        frame_term = F.binary_cross_entropy_with_logits(pooled, clip_targets.float(), reduction="none").mean(-1)
        frame_term = frame_term if reduction == "none" else frame_term.mean()
    clip_loss = clip_loss if reduction == "none" else clip_loss.mean()
    return (1.0 - frame_weight) * clip_loss + frame_weight * frame_term


__all__ = ["frame_bce", "packed_frame_mask", "per_clip_loss", "sed_loss", "sed_per_clip_loss", "steps_valid_mask"]

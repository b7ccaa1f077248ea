"""The validation pass of a training run and its metrics; the model-on-a-batch call shared with
the training step.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.data import DataLoader

from audioflex.data.datasets import Batch
from audioflex.evaluate.metrics import clip_metrics
from audioflex.models.outputs import AudioOutput
from audioflex.train.losses import per_clip_loss
from audioflex.train.runlog import RunLog


def forward_batch(model: nn.Module, batch: Batch, packed: bool) -> AudioOutput:
    """The model on a batch: ``model(PackedBatch)`` or ``model(spec [B, F, T], frames [B])``
    (the model contract's two conventions)."""
    if packed:
        return model(batch.inputs)
    return model(batch.inputs, batch.frames)


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``amp_dtype`` on ``device``'s type, or nothing without one."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def validation_metrics(scores: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> dict[str, float]:
    """Validation metrics (:func:`~audioflex.evaluate.metrics.clip_metrics`) of probabilities
    ``scores [N, C]`` against ``targets [N, C]``, with a ``primary`` entry; numbers only."""
    out = clip_metrics(scores.numpy(), targets.numpy(), multilabel)
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float))}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    packed: bool,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    loss_kind: str,
    multilabel: bool,
    runlog: RunLog,
) -> dict[str, float]:
    """Validation metrics of ``model`` over ``loader`` (plus the mean clip ``loss``; empty when no
    batch held a readable clip). The model's train/eval mode is restored afterwards; unreadable
    and warned clips go to ``runlog``."""
    was_training = model.training
    model.eval()
    scores, targets, losses = [], [], []
    for batch in loader:
        runlog.report_batch(batch.bad, batch.notes)
        if batch.inputs is None:
            continue
        batch = batch.to(device)
        with autocast(device, amp_dtype):
            out = forward_batch(model, batch, packed)
        logits = out.clip_logits.float()
        losses.append(per_clip_loss(logits, batch.targets, loss_kind).cpu())
        probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, -1)
        scores.append(probs.cpu())
        targets.append(batch.targets.float().cpu())
    model.train(was_training)
    if not scores:
        return {}
    res = validation_metrics(torch.cat(scores), torch.cat(targets), multilabel)
    res["loss"] = float(torch.cat(losses).mean())
    return res


__all__ = ["autocast", "evaluate", "forward_batch", "validation_metrics"]

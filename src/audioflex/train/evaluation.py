"""The validation pass of a training run and its metrics; the model-on-a-batch call shared with
the training step.

Two passes: :func:`evaluate` (clip metrics of the validation loader's batches) and, for
strong-label runs, :func:`evaluate_events` (every validation clip scored at its full length by a
``Pipeline`` as ``audioflex evaluate`` does, then frame and event metrics,
:func:`audioflex.evaluate.selection.sed_validation_metrics`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.data import DataLoader

from audioflex.audio.frontend.base import FrontendConfig
from audioflex.data.datasets import Batch
from audioflex.data.records import ClipRecord
from audioflex.evaluate.metrics import clip_metrics
from audioflex.evaluate.selection import sed_validation_metrics, selection_value
from audioflex.inference.pipeline import Pipeline
from audioflex.inference.records import audio_ids, score_records
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


@torch.no_grad()
def evaluate_events(
    model: nn.Module,
    frontend: FrontendConfig,
    labels: list[str],
    records: list[ClipRecord],
    *,
    device: torch.device,
    select: str,
    psds: bool = False,
    window_hop: float = 0.5,
) -> dict[str, float]:
    """Frame and event metrics of a frame-head ``model`` on strongly labelled ``records`` (each
    scored once at its full length), with a ``primary`` entry = the ``select`` metric (NaN when
    undefined: never the best) and ``unreadable`` (files left out). The model's train/eval mode is restored."""
    was_training = model.training
    try:
        pipe = Pipeline(model, frontend, labels, multilabel=True, device=device, window_hop=window_hop)
        frames, reference, skipped = score_records(pipe, records, list(range(len(labels))), set(labels))
    finally:
        model.train(was_training)
    if not frames:
        return {}
    clips = {k: r.labels for k, r in zip(audio_ids(records), records)}
    res = sed_validation_metrics(frames, reference, labels, clip_targets=clips, psds=psds or select == "psds1")
    res["primary"] = selection_value(res, select)
    res["unreadable"] = float(len(skipped))
    return res


__all__ = ["autocast", "evaluate", "evaluate_events", "forward_batch", "validation_metrics"]

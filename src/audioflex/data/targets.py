"""Frame targets for strong-label training: events -> ``[num_frames, C]`` 0/1 targets.

Frame ``t`` covers ``[offset_s + t * hop, offset_s + (t + 1) * hop)`` seconds. A
:class:`FrameTargetSpec` says how a model's frame-wise output steps lie over the front-end frames;
:func:`clip_frame_targets` rasterises one (cropped) clip's events at that step for the training
datasets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from audioflex.data.records import ClipRecord, as_event

__all__ = ["FrameTargetSpec", "clip_frame_targets", "events_to_frame_targets", "is_strong"]

_EPS = 1e-9  # tolerance (in frames) for frame-boundary decisions


def events_to_frame_targets(
    events: Iterable[Any],
    labels: Sequence[str],
    num_frames: int,
    frame_hop_s: float,
    *,
    rule: str = "any",
    offset_s: float = 0.0,
) -> np.ndarray:
    """Strong labels -> frame targets ``[num_frames, C]`` (float32, 0/1) for frame-level training.

    Frame ``t`` covers ``[offset_s + t * hop, offset_s + (t + 1) * hop)``. With ``rule="any"`` a frame
    is active if the event overlaps it at all (a zero-length event marks the frame holding its
    onset); with ``rule="half"`` only if the overlap is at least half a frame. Parts of events
    outside the frames are ignored. Unknown labels raise ``ValueError``.
    """
    if rule not in ("any", "half"):
        raise ValueError(f"rule must be 'any' or 'half', got {rule!r}")
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if not (frame_hop_s > 0 and math.isfinite(frame_hop_s)):
        raise ValueError(f"frame_hop_s must be a positive number of seconds, got {frame_hop_s}")
    labels = list(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((num_frames, len(labels)), dtype=np.float32)
    t = np.arange(num_frames, dtype=np.float64)
    for i, e in enumerate(events):
        ev = as_event(e, where=f"events[{i}]")
        if ev.label not in index:
            raise ValueError(
                f"events[{i}]: label {ev.label!r} is not among the {len(labels)} labels "
                f"({labels[:8]}{'...' if len(labels) > 8 else ''})"
            )
        a = (ev.onset - offset_s) / frame_hop_s
        b = (ev.offset - offset_s) / frame_hop_s
        if b - a <= _EPS:  # zero-length: the frame holding the onset
            if rule == "any":
                k = math.floor(a + _EPS)
                if 0 <= k < num_frames:
                    out[k, index[ev.label]] = 1.0
            continue
        overlap = np.minimum(b, t + 1) - np.maximum(a, t)
        need = _EPS if rule == "any" else 0.5 - _EPS
        out[overlap >= need, index[ev.label]] = 1.0
    return out


@dataclasses.dataclass(frozen=True)
class FrameTargetSpec:
    """How strong labels become frame targets for a model's frame-wise output.

    ``step_frames``: front-end frames per output step (HTS-AT: 32 = 0.32 s at 10 ms; ElasticAST:
    the patch size over its ``frame_substeps``, 16 frame shifts by default). ``num_steps``: steps of
    every clip (HTS-AT: 32 over its 1024-frame window) or None (as many as the clip's columns hold:
    ElasticAST). ``column_frames``: with ``num_steps=None``, targets cover whole columns of this many
    frames (a packed model gives logits for every step of a clip's last, partly filled column; the
    steps past the clip's end are padding, outside ``frame_valid``); None: exactly the valid steps.
    ``rule``: ``any`` (a step is active if an event overlaps it) or ``half`` (by >= half a step).
    """

    labels: tuple[str, ...]
    step_frames: int
    num_steps: int | None = None
    rule: str = "any"
    column_frames: int | None = None


def is_strong(record: ClipRecord) -> bool:
    """Whether a clip's frame targets are known: every clip label has events (a clip without
    labels and events is a strongly labelled empty clip); weak-only clips are not strong."""
    return set(record.labels) <= {e.label for e in record.events}


def clip_frame_targets(
    spec: FrameTargetSpec, record: ClipRecord | None, frames: int, offset_s: float, hop_s: float
) -> dict[str, Any]:
    """One clip's frame targets for ``spec``: ``frame_target [S, C]`` float32, ``frame_valid``
    (its real steps) and ``strong`` (see :func:`is_strong`; other clips get zeros).

    ``frames``: the clip's valid front-end frames, the first at ``offset_s`` seconds of the
    record's audio; ``hop_s``: the front end's frame hop. ``S`` is ``spec.num_steps`` or, when
    that is None, one step per ``spec.step_frames`` frames (of whole ``spec.column_frames`` columns
    when set).
    """
    valid = max(1, math.ceil(frames / spec.step_frames))
    steps = spec.num_steps if spec.num_steps is not None else valid
    if spec.num_steps is None and spec.column_frames is not None:
        steps = max(1, math.ceil(frames / spec.column_frames)) * spec.column_frames // spec.step_frames
    valid = min(valid, steps)
    strong = record is not None and is_strong(record)
    if strong:
        t = events_to_frame_targets(
            record.events, spec.labels, steps, spec.step_frames * hop_s, rule=spec.rule, offset_s=offset_s
        )
        target = torch.as_tensor(t, dtype=torch.float32)
    else:
        target = torch.zeros(steps, len(spec.labels))
    return {"frame_target": target, "frame_valid": valid, "strong": strong}

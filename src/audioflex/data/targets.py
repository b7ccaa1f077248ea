"""Frame targets for strong-label training: events -> ``[num_frames, C]`` 0/1 targets.

Frame ``t`` covers ``[offset_s + t * hop, offset_s + (t + 1) * hop)`` seconds; the datasets
rasterise a clip's events at its model's frame-logit step (``FrameTargetSpec`` in
:mod:`audioflex.data.datasets`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from audioflex.data.records import as_event

__all__ = ["events_to_frame_targets", "frame_targets_for"]

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


def frame_targets_for(
    events: Sequence[Any],
    labels: Sequence[str],
    num_frames: int,
    frame_hop_s: float,
    *,
    rule: str = "any",
    offset_s: float = 0.0,
) -> torch.Tensor:
    """Strong labels -> frame targets ``[num_frames, C]`` float32 (1 where an event overlaps step
    ``[t, t + 1) * frame_hop_s``; ``rule="half"``: by at least half a step), via
    :func:`events_to_frame_targets`. For HTS-AT use ``num_frames = model.num_steps`` (32) and
    ``frame_hop_s = 0.32``; for ElasticAST the clip's column count and 16 frame shifts;
    ``offset_s`` = the crop's start when training on a crop of a longer clip.
    """
    t = events_to_frame_targets(events, labels, num_frames, frame_hop_s, rule=rule, offset_s=offset_s)
    return torch.as_tensor(np.asarray(t), dtype=torch.float32)

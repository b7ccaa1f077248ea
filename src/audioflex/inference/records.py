"""Frame scores of dataset records: every clip scored once at its full length by a ``Pipeline``
(sliding windows + overlap-add, ``Pipeline.frame_scores``), with its reference events.

Shared by ``audioflex evaluate`` on strong labels (:mod:`audioflex.apps.sed`) and the event
validation of strong-label training runs (:mod:`audioflex.train.evaluation`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from audioflex.audio.io import AudioError, load_audio
from audioflex.data.records import ClipRecord, Event
from audioflex.evaluate.tuning import FrameSet
from audioflex.inference.pipeline import Pipeline

logger = logging.getLogger(__name__)

__all__ = ["audio_ids", "record_source", "score_records"]


def audio_ids(records: Sequence[ClipRecord]) -> list[str]:
    """A unique, file-name-safe id per record (its id, ``/`` -> ``__``; ``_k`` for repeats)."""
    seen: dict[str, int] = {}
    out = []
    for r in records:
        k = r.id.replace("/", "__").replace("\\", "__") or r.path.stem
        n = seen.get(k, 0)
        seen[k] = n + 1
        out.append(k if n == 0 else f"{k}_{n}")
    return out


def record_source(record: ClipRecord, sample_rate: int) -> Any:
    """The clip as a path (whole file, streamed) or a loaded waveform ``[T]`` (a part of a file)."""
    if record.start == 0.0 and record.end is None:
        return str(record.path)
    dur = None if record.end is None else record.end - record.start
    return load_audio(record.path, sample_rate, offset=record.start, duration=dur)


def score_records(
    pipe: Pipeline, records: Sequence[ClipRecord], columns: list[int], keep: set[str],
    progress: Callable[[int], Any] | None = None,
) -> tuple[dict[str, FrameSet], dict[str, list[Event]], list[str]]:
    """Frame scores of ``records`` with ``pipe``.

    Args:
        pipe: a pipeline over a frame-head model.
        records: the clips (their ``events`` are the reference).
        columns: the model's output columns to keep (in this order).
        keep: the labels whose reference events are kept.
        progress: called with 1 after each clip.

    Returns:
        ``({audio id: FrameSet (probs [T', len(columns)], clip [len(columns)])}, {audio id: [Event]}, unreadable
        paths)``; an unreadable file is logged and left out.
    """
    frames: dict[str, FrameSet] = {}
    reference: dict[str, list[Event]] = {}
    skipped: list[str] = []
    for key, rec in zip(audio_ids(records), records):
        try:
            scores = pipe.frame_scores(record_source(rec, pipe.sample_rate))
        except (AudioError, OSError) as e:
            logger.warning("score_records: skipping %s (%s)", rec.path, e)
            skipped.append(str(rec.path))
            continue
        probs = scores.probs.numpy()[:, columns].astype(np.float64)
        duration = max(scores.duration_s, max((e.offset for e in rec.events), default=0.0))
        frames[key] = FrameSet(probs, scores.frame_hop_s, duration,
                               clip=scores.clip.numpy()[columns].astype(np.float64))
        reference[key] = [e for e in rec.events if e.label in keep]
        if progress is not None:
            progress(1)
    return frames, reference, skipped

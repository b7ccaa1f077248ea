"""What a dataset holds, before anything trains on it (``audioflex inspect DATA``).

:func:`inspect_dataset` summarises a :class:`~audioflex.data.records.ReadResult`: the layout kind
detected, classes and clip counts per split and fold, a duration histogram (from file headers;
nothing is decoded), events per clip, files the metadata names but the disk lacks, files whose
header cannot be read, and the reader's warnings. :meth:`DatasetSummary.lines` is the text
report; train and evaluate log the same lines when they read their data.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioflex.audio.io import AudioError, audio_info
from audioflex.data.records import ClipRecord, ReadResult

__all__ = ["DatasetSummary", "inspect_dataset", "log_summary"]

logger = logging.getLogger(__name__)

_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, math.inf)
_BAR = 30


def _group(r: ClipRecord) -> str:
    if r.split is not None:
        return r.split
    if r.fold is not None:
        return f"fold {r.fold}"
    return "all"


def _group_order(name: str) -> tuple[int, str]:
    order = {"train": 0, "valid": 1, "test": 2}
    return (order.get(name, 3), name)


@dataclass
class DatasetSummary:
    """The summary of one dataset (see the module docstring); ``lines()`` renders it."""

    kind: str
    source: str
    num_clips: int
    groups: dict[str, int]
    classes: dict[str, dict[str, int]]
    durations: list[float] = field(default_factory=list)
    events_per_clip: dict[int, int] = field(default_factory=dict)
    num_events: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def histogram(self) -> list[str]:
        """Duration histogram lines (text bars)."""
        if not self.durations:
            return []
        counts = [0] * (len(_EDGES) - 1)
        for d in self.durations:
            i = next(k for k in range(len(_EDGES) - 1) if d < _EDGES[k + 1])
            counts[i] += 1
        top = max(counts)
        out = []
        for k, c in enumerate(counts):
            if not c:
                continue
            hi = "inf" if math.isinf(_EDGES[k + 1]) else f"{_EDGES[k + 1]:g}"
            out.append(f"  {_EDGES[k]:>5g}-{hi:<4} s {c:>7}  {'#' * max(1, round(_BAR * c / top))}")
        return out

    def lines(self) -> list[str]:
        """The text report, one item per line."""
        groups = sorted(self.groups, key=_group_order)
        out = [f"dataset: {self.source} (kind {self.kind}), {self.num_clips} clips, {len(self.classes)} classes",
               "clips per split/fold: " + ", ".join(f"{g} {self.groups[g]}" for g in groups)]
        if self.classes:
            width = max(5, min(28, max(len(c) for c in self.classes)))
            out.append(f"  {'class':<{width}} " + " ".join(f"{g:>8}" for g in groups))
            for name, per in self.classes.items():
                out.append(f"  {name[:width]:<{width}} " + " ".join(f"{per.get(g, 0):>8}" for g in groups))
        if self.durations:
            ds = sorted(self.durations)
            total = sum(ds)
            out.append(f"durations: {len(ds)} clips, min {ds[0]:.2f} s, median {ds[len(ds) // 2]:.2f} s, "
                       f"max {ds[-1]:.2f} s, total "
                       + (f"{total / 3600:.2f} h" if total >= 3600 else f"{total / 60:.1f} min"))
            out += self.histogram()
        if self.num_events:
            per = ", ".join(f"{k}: {v}" for k, v in sorted(self.events_per_clip.items()))
            out.append(f"events: {self.num_events} in all; clips by number of events: {per}")
        if self.missing:
            out.append(f"missing files: {len(self.missing)} (named by the metadata, not on disk), e.g. "
                       + ", ".join(self.missing[:3]))
        if self.unreadable:
            out.append(f"unreadable files: {len(self.unreadable)}, e.g. " + "; ".join(self.unreadable[:3]))
        out += [f"warning: {w}" for w in self.warnings]
        return out


def inspect_dataset(result: ReadResult, *, check_audio: bool = True, max_files: int | None = None) -> DatasetSummary:
    """Summarise ``result`` (see the module docstring).

    Args:
        result: what :func:`~audioflex.data.readers.read_dataset` returned.
        check_audio: read every file's header (durations, unreadable files); otherwise only the
            durations the metadata gives are used.
        max_files: read at most this many headers (the first ones); None: all.
    """
    records: Sequence[ClipRecord] = result.records
    groups: Counter[str] = Counter(_group(r) for r in records)
    classes: dict[str, dict[str, int]] = {name: {} for name in result.labels}
    for r in records:
        g = _group(r)
        for name in set(r.labels) | {e.label for e in r.events}:
            per = classes.setdefault(name, {})
            per[g] = per.get(g, 0) + 1
    durations, unreadable = [], []
    for i, r in enumerate(records):
        if r.clip_duration is not None:
            durations.append(float(r.clip_duration))
            continue
        if not check_audio or (max_files is not None and i >= max_files):
            continue
        try:
            info = audio_info(r.path)
            durations.append(max(0.0, float(info.duration) - r.start))
        except (AudioError, OSError) as exc:
            unreadable.append(str(exc))
    strong = any(r.events for r in records)
    events = Counter(len(r.events) for r in records) if strong else Counter()
    return DatasetSummary(
        kind=result.kind or "?", source=str(result.source or Path()), num_clips=len(records), groups=dict(groups),
        classes=classes, durations=durations, events_per_clip=dict(events),
        num_events=sum(len(r.events) for r in records), missing=list(result.missing), unreadable=unreadable,
        warnings=list(result.warnings),
    )


def log_summary(result: ReadResult, where: str = "data") -> DatasetSummary:
    """Log the summary of ``result`` (INFO, one line per item, prefixed with ``where``) without
    opening any audio file (train and evaluate call this when they read their data)."""
    summary = inspect_dataset(result, check_audio=False)
    for line in summary.lines():
        logger.info("%s: %s", where, line)
    return summary

"""A task split's rows: embeddings and targets (scene: one row per file; event: one row per
timestamp), merged folds, standardisation, and the scores of predictions on a split (events
extracted with a post-processing setting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audioflex.hear.probe.config import ProbeConfig, postprocessing_grid
from audioflex.hear.probe.scores import event_score, hear_events, nan0, scene_score
from audioflex.hear.probe.tasks import HearTask, TaskError


@dataclass
class SplitData:
    x: np.ndarray  # [N, D] (scene) or [sum T, D] (event)
    y: np.ndarray  # [N, C] multi-hot / one-hot
    files: list[str]
    offsets: list[int]  # event: rows of file i are offsets[i]:offsets[i+1]
    timestamps: list[np.ndarray]


def split_data(task: HearTask, split: str, emb: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> SplitData:
    """Rows and targets of a split; ``emb`` maps the split's file names to (vectors, timestamps).
    Event targets: a timestamp is labelled with the events with ``start <= t <= end`` (the kit's
    interval tree over ``[start, end + 0.0001)``)."""
    items = task.splits[split]
    c = len(task.labels)
    index = {lab: i for i, lab in enumerate(task.labels)}
    xs, ys, offsets, stamps = [], [], [0], []
    for fname, lab in items.items():
        if fname not in emb:
            raise TaskError(f"{task.root}: no embedding for {fname!r} of split {split!r}")
        vec, ts = emb[fname]
        if task.is_event:
            if ts is None or vec.ndim != 2 or len(ts) != len(vec):
                raise TaskError(f"{task.root}: {fname!r} needs timestamp embeddings [T, D] with T timestamps")
            y = np.zeros((len(ts), c), np.float32)
            for e in lab:
                y[(ts >= e["start"]) & (ts < e["end"] + 0.0001), index[e["label"]]] = 1.0
            xs.append(vec)
            stamps.append(np.asarray(ts, np.float64))
            offsets.append(offsets[-1] + len(ts))
        else:
            if vec.ndim != 1:
                raise TaskError(f"{task.root}: {fname!r} needs a scene embedding [D], got shape {vec.shape}")
            if not task.multilabel and len(lab) != 1:
                raise TaskError(f"{task.root}: {fname!r} of multiclass split {split!r} has {len(lab)} labels, not 1")
            y = np.zeros((1, c), np.float32)
            for name in lab:
                y[0, index[str(name)]] = 1.0
            xs.append(vec[None])
        ys.append(y)
    x = np.concatenate(xs).astype(np.float32)
    if not np.isfinite(x).all():
        raise TaskError(f"{task.root}: split {split!r} has NaN/Inf embeddings; fix the model or the audio")
    return SplitData(x, np.concatenate(ys), list(items), offsets, stamps)


def merge_splits(parts: Sequence[SplitData]) -> SplitData:
    offs = [0]
    for p in parts:
        offs += [offs[-1] + o for o in p.offsets[1:]]
    return SplitData(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                      [f for p in parts for f in p.files], offs, [t for p in parts for t in p.timestamps])


def split_events(task: HearTask, d: SplitData, probs: np.ndarray, pp: tuple[float, float]) -> dict[str, list[dict]]:
    median_ms, min_ms = pp
    return {f: hear_events(probs[d.offsets[i] : d.offsets[i + 1]], d.timestamps[i], task.labels,
                           median_ms=median_ms, min_ms=min_ms) for i, f in enumerate(d.files)}


def split_score(task: HearTask, name: str, d: SplitData, probs: np.ndarray, pp: tuple[float, float] | None,
           splits: Sequence[str], *, raw: bool = False) -> float:
    if not task.is_event:
        return scene_score(name, probs, d.y)
    refs = {f: ev for s in splits for f, ev in task.splits[s].items()}
    est = split_events(task, d, probs, pp or (250.0, 125.0))
    return event_score(name, {f: refs[f] for f in d.files}, est, task.labels, nan_as_zero=not raw)


def best_score(task: HearTask, d: SplitData, probs: np.ndarray, splits: Sequence[str], primary: str,
                cfg: ProbeConfig) -> tuple[float, tuple[float, float] | None]:
    """The primary score and, for events, the best post-processing of the grid (NaN counts as 0)."""
    if not task.is_event:
        return split_score(task, primary, d, probs, None, splits), None
    # the kit sorts (score, postprocessing) pairs in descending order: ties go to the larger
    # setting, and NaN counts as 0 (also for error rates, where the kit's choice is the largest)
    scored = [(split_score(task, primary, d, probs, pp, splits, raw=True), pp) for pp in postprocessing_grid(task, cfg)]
    s, pp = max(scored, key=lambda t: (nan0(t[0]), t[1]))
    return s, pp


def standardise(tr: SplitData, *others: SplitData) -> None:
    mean, std = tr.x.mean(0), tr.x.std(0) + 1e-5
    for d in (tr, *others):
        d.x = (d.x - mean) / std


__all__ = ["SplitData", "best_score", "merge_splits", "split_data", "split_events", "split_score", "standardise"]

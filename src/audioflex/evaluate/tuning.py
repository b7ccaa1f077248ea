"""Event post-processing tuned on a validation split: threshold, median filter, minimum duration.

:func:`tune_postprocessing` tries every combination of a threshold grid, median-filter lengths
and minimum durations on validation frame probabilities and keeps, per class (or one setting for
all classes), the one with the best event-based F1 (collar matching as ``sed_eval``: onset within
``t_collar``, offset within ``max(t_collar, percentage_of_length * reference length)``, or the
onset only). The chosen values are then applied to the test split by the caller
(:func:`~audioflex.evaluate.events.frames_to_events`).

The grid is in seconds, the same for every model: a model with 0.04 s steps and one with 0.32 s
steps choose from the same median-filter and minimum-duration lengths (each rounded to the
model's steps by :func:`~audioflex.evaluate.events.frames_to_events`; lengths that round to the
same filter are tried once).

Matching here is a maximum bipartite matching per file and class (what ``sed_eval``'s optimal
matching counts), in plain Python: tuning runs thousands of settings, too many for ``sed_eval``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioflex.data.records import Event
from audioflex.evaluate.events import PostProcessing, frames_to_events, median_window, min_event_frames

__all__ = ["DEFAULT_MEDIAN_S", "DEFAULT_MIN_DURATION_S", "DEFAULT_THRESHOLDS", "FrameSet", "collar_counts",
           "tune_postprocessing"]

DEFAULT_THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))
DEFAULT_MEDIAN_S = (0.0, 0.3, 0.5, 0.7, 1.0)  # median filter lengths in seconds (0 = none)
DEFAULT_MIN_DURATION_S = (0.0, 0.2, 0.3, 0.5)  # minimum event durations in seconds


@dataclass(frozen=True)
class FrameSet:
    """One file's frame probabilities for tuning: ``probs [T, C]``, seconds per step, duration
    and, where the scorer gives them, the clip probabilities ``clip [C]``."""

    probs: np.ndarray
    hop_s: float
    duration_s: float
    clip: np.ndarray | None = None


def _matches(ref: list[tuple[float, float]], est: list[tuple[float, float]], t_collar: float,
             pol: float, onset_only: bool) -> int:
    """Size of a maximum matching between reference and estimated events of one class."""
    if not ref or not est:
        return 0
    adj = []
    for r_on, r_off in ref:
        off_collar = max(t_collar, pol * (r_off - r_on))
        adj.append([j for j, (e_on, e_off) in enumerate(est) if abs(e_on - r_on) <= t_collar
                    and (onset_only or abs(e_off - r_off) <= off_collar)])
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(ref)))


def collar_counts(
    reference: Mapping[str, Sequence[Event]], estimated: Mapping[str, Sequence[Event]], label: str, *,
    t_collar: float = 0.2, percentage_of_length: float = 0.2, onset_only: bool = False,
) -> tuple[int, int, int]:
    """(matched, reference, estimated) event counts of one class over all files."""
    tp = n_ref = n_est = 0
    for key in set(reference) | set(estimated):
        ref = [(e.onset, e.offset) for e in reference.get(key, ()) if e.label == label]
        est = [(e.onset, e.offset) for e in estimated.get(key, ()) if e.label == label]
        n_ref += len(ref)
        n_est += len(est)
        tp += _matches(ref, est, t_collar, percentage_of_length, onset_only)
    return tp, n_ref, n_est


def _f1(tp: int, n_ref: int, n_est: int) -> float:
    return 2.0 * tp / (n_ref + n_est) if n_ref + n_est else 0.0


def _median_steps(seconds: float, hop_s: float) -> int:
    return max(1, median_window(seconds, hop_s))  # 0 and 1: no filter


def _distinct(values: Sequence[float], hop_s: float, steps: Any) -> list[float]:
    """The first of each group of ``values`` (seconds, >= 0) that ``steps(value, hop_s)`` maps to
    the same number of frames."""
    seen: dict[int, float] = {}
    for v in values:
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"tune_postprocessing: grid lengths must be seconds >= 0, got {v}")
        seen.setdefault(steps(float(v), hop_s), float(v))
    return list(seen.values())


def tune_postprocessing(
    frames: Mapping[str, FrameSet],
    reference: Mapping[str, Sequence[Event]],
    labels: Sequence[str],
    *,
    per_class: bool = True,
    onset_only: bool = False,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    median_filter_s: Sequence[float] = DEFAULT_MEDIAN_S,
    min_duration_s: Sequence[float] = DEFAULT_MIN_DURATION_S,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> dict[str, Any]:
    """The post-processing with the best validation event F1.

    Args:
        frames: validation ``{file: FrameSet}``; ``reference``: ``{file: [Event]}``.
        labels: the classes (columns of ``probs``).
        per_class: tune each class on its own (else one setting maximising the macro F1).
        onset_only: score onsets only (else onset and offset).
        thresholds, median_filter_s, min_duration_s: the grid (median filter and minimum duration
            in seconds, rounded to the files' ``hop_s`` as ``frames_to_events`` does).

    Returns:
        ``thresholds``, ``median_filter_s``, ``min_duration_s`` (``{label: value}``, ready for
        ``frames_to_events``), ``validation_f1`` (``{label: F1}``), ``validation_f1_macro``,
        ``criterion`` and ``per_class``.
    """
    if not frames:
        raise ValueError("tune_postprocessing: no validation files")
    hops = {round(f.hop_s, 9) for f in frames.values()}
    if len(hops) != 1:
        raise ValueError(f"tune_postprocessing: files have different frame hops {sorted(hops)}")
    hop = hops.pop()
    combos = [(m, d) for m in _distinct(median_filter_s, hop, _median_steps)
              for d in _distinct(min_duration_s, hop, min_event_frames)]
    # table[c][(m, d, t)] = (tp, n_ref, n_est), m and d in seconds
    table: list[dict[tuple[float, float, float], tuple[int, int, int]]] = [{} for _ in labels]
    for c, label in enumerate(labels):
        ref = {k: [e for e in reference.get(k, ()) if e.label == label] for k in frames}
        for m, d in combos:
            for t in thresholds:
                post = PostProcessing(thresholds=float(t), median_filter_s=m, min_duration_s=d)
                est = {k: frames_to_events(f.probs[:, [c]], f.hop_s, [label], post, duration_s=f.duration_s)
                       for k, f in frames.items()}
                table[c][(m, d, t)] = collar_counts(ref, est, label, t_collar=t_collar,
                                                    percentage_of_length=percentage_of_length, onset_only=onset_only)
    keys = list(table[0]) if labels else []
    if per_class:
        best = [max(keys, key=lambda k, c=c: (_f1(*table[c][k]), -abs(k[2] - 0.5))) for c in range(len(labels))]
    else:
        one = max(keys, key=lambda k: (np.mean([_f1(*table[c][k]) for c in range(len(labels))]), -abs(k[2] - 0.5)))
        best = [one] * len(labels)
    f1 = {lab: _f1(*table[c][best[c]]) for c, lab in enumerate(labels)}
    return {
        "thresholds": {lab: float(best[c][2]) for c, lab in enumerate(labels)},
        "median_filter_s": {lab: float(best[c][0]) for c, lab in enumerate(labels)},
        "min_duration_s": {lab: float(best[c][1]) for c, lab in enumerate(labels)},
        "validation_f1": f1,
        "validation_f1_macro": float(np.mean(list(f1.values()))) if f1 else float("nan"),
        "criterion": ("onset" if onset_only else "onset+offset") + f" event F1, collar {t_collar:g} s",
        "per_class": per_class,
    }

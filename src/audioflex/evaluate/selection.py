"""Sound event detection metrics cheap enough for every validation of a training run, and the one
that picks ``best/``.

:func:`sed_validation_metrics` scores full-length frame probabilities of the validation clips
(``{audio id: FrameSet}``, e.g. from :func:`audioflex.inference.records.score_records`):

* ``frame_mAP``: frame-level average precision, macro over the classes with active frames
  (reference events rasterised on each file's timeline, a step active if an event overlaps it);
  threshold-free;
* ``frame_f1``: frame-level F1 at threshold 0.5, macro over the same classes;
* ``event_f1``: event-based F1 (onset and offset, 200 ms collar, offset collar
  ``max(200 ms, 20 % of the length)``) at threshold 0.5 with no filtering, macro;
* ``onset_f1``: onset-only F1 (200 ms collar), macro, with **one** threshold, median filter and
  minimum duration for all classes tuned on these clips from a coarse grid
  (:data:`SELECTION_GRID`; the chosen values are logged as ``onset_threshold``,
  ``onset_median_s``, ``onset_min_s``);
* ``mAP``: clip-level mAP of the clip probabilities (where the scorer gives them);
* ``psds1``: DCASE PSDS1 via ``sed_scores_eval`` (only with ``psds=True``; needs the ``sed``
  extra).

Event macros run over the classes that have reference events in the clips (a class absent from
validation would add a constant 0).

Why ``onset_f1`` selects by default: a validation split of a few dozen clips has ~20 events per
class. PSDS1 (intersection criteria of 0.7) stays at or near 0 until localisation is good, and
jumps between evaluations on so few events; a per-class tuned threshold overfits each class's
handful of events. One tuned setting for all classes with an onset-only, 200 ms criterion is the
DCASE-style event metric that moves smoothly from the first steps on, does not depend on a fixed
0.5 threshold (frame probabilities are poorly calibrated early in training) and costs about a
second per 40 clips (:data:`SELECTION_GRID`: 9 thresholds x 3 median filters x 2 minimum
durations). ``sed.select`` chooses another metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from audioflex.data.records import Event
from audioflex.data.targets import events_to_frame_targets
from audioflex.evaluate.events import frames_to_events
from audioflex.evaluate.metrics import class_average_precision, mean_average_precision
from audioflex.evaluate.scores import psds_from_scores, score_frame
from audioflex.evaluate.tuning import FrameSet, collar_counts, tune_postprocessing

__all__ = ["SELECTION_GRID", "SELECT_METRICS", "sed_validation_metrics", "selection_value"]

SELECTION_GRID: dict[str, tuple[float, ...] | tuple[int, ...]] = {
    "thresholds": tuple(round(0.1 * k, 1) for k in range(1, 10)),
    "median_filter_s": (0.0, 0.3, 0.5),
    "min_duration_s": (0.0, 0.2),
}
SELECT_METRICS = ("onset_f1", "psds1", "event_f1", "frame_mAP", "mAP")


def _frame_arrays(
    frames: Mapping[str, FrameSet], reference: Mapping[str, Sequence[Event]], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """All files' frame probabilities and rasterised reference, stacked: ``[sum T, C]`` each."""
    probs, targets = [], []
    for key, f in frames.items():
        probs.append(f.probs)
        targets.append(events_to_frame_targets(reference.get(key, ()), labels, f.probs.shape[0], f.hop_s))
    return np.concatenate(probs), np.concatenate(targets)


def _macro_f1(counts: Sequence[tuple[int, int, int]]) -> float:
    values = [2.0 * tp / (n_ref + n_est) for tp, n_ref, n_est in counts if n_ref > 0]
    return float(np.mean(values)) if values else float("nan")


def sed_validation_metrics(
    frames: Mapping[str, FrameSet],
    reference: Mapping[str, Sequence[Event]],
    labels: Sequence[str],
    *,
    clip_targets: Mapping[str, Sequence[str]] | None = None,
    psds: bool = False,
) -> dict[str, float]:
    """The metrics of the module docstring (numbers only, ready for ``metrics.jsonl``).

    Args:
        frames: ``{audio id: FrameSet}`` with ``probs [T', C]`` in ``labels`` order.
        reference: ``{audio id: [Event]}`` (``[]`` for a clip without events).
        labels: the class names (columns of ``probs``).
        clip_targets: ``{audio id: clip labels}`` for the clip ``mAP`` (skipped when None or
            when a FrameSet has no ``clip``).
        psds: also compute ``psds1`` (``sed_scores_eval``).

    Raises:
        ValueError: no files, or frame probabilities that do not match ``labels``.
    """
    if not frames:
        raise ValueError("sed_validation_metrics: no validation files were scored")
    labels = list(labels)
    for key, f in frames.items():
        if f.probs.ndim != 2 or f.probs.shape[1] != len(labels):
            raise ValueError(f"sed_validation_metrics: {key}: probabilities {list(f.probs.shape)} do not match "
                             f"{len(labels)} labels")
    present = [lab for lab in labels if any(e.label == lab for evs in reference.values() for e in evs)]
    probs, targets = _frame_arrays(frames, reference, labels)
    out: dict[str, float] = {}
    ap = class_average_precision(probs, targets)
    out["frame_mAP"] = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    pred, ref = probs >= 0.5, targets >= 0.5
    f1s = [2.0 * (pred[:, j] & ref[:, j]).sum() / (pred[:, j].sum() + ref[:, j].sum())
           for j in range(len(labels)) if ref[:, j].any()]
    out["frame_f1"] = float(np.mean(f1s)) if f1s else float("nan")

    fixed = {k: [Event(e.onset, e.offset, e.label)
                 for e in frames_to_events(f.probs, f.hop_s, labels, duration_s=f.duration_s)]
             for k, f in frames.items()}
    out["event_f1"] = _macro_f1([collar_counts(reference, fixed, lab) for lab in present])
    if present:
        cols = [labels.index(lab) for lab in present]
        sub = {k: FrameSet(f.probs[:, cols], f.hop_s, f.duration_s) for k, f in frames.items()}
        tuned = tune_postprocessing(sub, reference, present, per_class=False, onset_only=True, **SELECTION_GRID)
        lab0 = present[0]
        out["onset_f1"] = float(tuned["validation_f1_macro"])
        out["onset_threshold"] = tuned["thresholds"][lab0]
        out["onset_median_s"] = tuned["median_filter_s"][lab0]
        out["onset_min_s"] = tuned["min_duration_s"][lab0]
    else:
        out["onset_f1"] = float("nan")
    clips = [(f.clip, clip_targets.get(k, ())) for k, f in frames.items()
             if clip_targets is not None and f.clip is not None]
    if clips and len(clips) == len(frames):
        scores = np.stack([c for c, _ in clips])
        y = np.array([[lab in set(t) for lab in labels] for _, t in clips], dtype=np.float64)
        out["mAP"] = mean_average_precision(scores, y) if y.any() else float("nan")
    if psds and present:
        dfs = {k: score_frame(f.probs, f.hop_s, labels, f.duration_s) for k, f in frames.items()}
        durations = {k: f.duration_s for k, f in frames.items()}
        ref = {k: list(reference.get(k, ())) for k in frames}
        out["psds1"] = float(psds_from_scores(dfs, ref, durations, scenario="psds1")["psds"])
    return out


def selection_value(metrics: Mapping[str, Any], select: str) -> float:
    """The value of ``select`` among ``metrics`` (NaN when it is missing or undefined)."""
    if select not in SELECT_METRICS:
        raise ValueError(f"sed.select must be one of {SELECT_METRICS}, got {select!r}")
    return float(metrics.get(select, float("nan")))


"""HEAR scores: the kit's event extraction from frame probabilities, the scene scores
(accuracies, mAP, d', AUC) and the event scores (sed_eval onset/offset F-measures, 1 s segment
error rate), and which scores a task asks for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from audioflex.hear.probe.tasks import HearTask, TaskError, metric_name


def hear_events(
    probs: np.ndarray, timestamps_ms: np.ndarray, labels: Sequence[str], *, threshold: float = 0.5,
    median_ms: float = 250.0, min_ms: float = 125.0,
) -> list[dict[str, Any]]:
    """Frame probabilities ``[T, C]`` at regular ``timestamps_ms [T]`` -> events (``label``,
    ``start``/``end`` in ms), as the HEAR kit's ``create_events_from_prediction``:

    median filter of ``round(median_ms / hop)`` frames over the probabilities (any width, as
    ``scipy.ndimage.median_filter``), frames active where ``prob > threshold`` (strictly), runs of
    active frames become events from the first to the last active timestamp, and events with
    ``end - start < min_ms`` are dropped. The run finding and duration filter are
    :func:`audioflex.evaluate.events.frames_to_events` (whose events end one hop after the last
    frame, hence the shifted minimum duration).
    """
    from scipy.ndimage import median_filter

    from audioflex.evaluate.events import PostProcessing
    from audioflex.evaluate.events import frames_to_events as runs_to_events

    ts = np.asarray(timestamps_ms, dtype=np.float64)
    if len(ts) == 0:
        return []
    p = np.asarray(probs, dtype=np.float64)
    hop = float(np.mean(np.diff(ts))) if len(ts) > 1 else 1.0
    width = int(round(median_ms / hop)) if median_ms else 0
    if width:
        p = median_filter(p, size=(width, 1))
    events = runs_to_events(
        p, hop / 1000.0, labels,
        PostProcessing(thresholds=float(np.nextafter(threshold, np.inf)),  # HEAR: prob > threshold
                       min_duration_s=(min_ms + hop) / 1000.0),
        offset_s=ts[0] / 1000.0,
    )
    return [{"label": e.label, "start": round(1000.0 * e.onset, 6), "end": round(1000.0 * e.offset - hop, 6)}
            for e in events]


def in_seconds(reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]]) -> tuple[
        dict[str, list[tuple[float, float, str]]], dict[str, list[tuple[float, float, str]]]]:
    """HEAR events (ms dicts) of reference and estimate -> ``{file: [(onset_s, offset_s, label)]}``
    each, over the files of either (a file missing from one side has no events there), for the
    sed_eval wrappers."""
    files = set(reference) | set(estimated)

    def sec(events: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[float, float, str]]]:
        return {f: [(e["start"] / 1000.0, max(e.get("end", e["start"]), e["start"]) / 1000.0, str(e["label"]))
                    for e in events.get(f, [])] for f in files}

    return sec(reference), sec(estimated)


def nan0(x: float) -> float:
    """NaN -> 0 (how the kit ranks an unscorable validation)."""
    return 0.0 if math.isnan(x) else float(x)


def onset_f_measure(
    reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]],
    collar_ms: float = 200.0, labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """HEAR's ``event_onset_200ms_fms``: onset-only event-based F-measure, micro over classes
    and files, through ``sed_eval`` (:func:`audioflex.evaluate.metrics.onset_event_metrics`).
    Events are dicts with ``label``, ``start`` and ``end`` (ms). A system without any estimated
    event scores 0 (not NaN). Returns ``f_measure``, ``precision``, ``recall``, ``n_ref``, ``n_est``."""
    from audioflex.evaluate.metrics import onset_event_metrics

    ref, est = in_seconds(reference, estimated)
    m = onset_event_metrics(ref, est, t_collar=collar_ms / 1000.0, labels=labels)
    return {"f_measure": nan0(m["f1"]), "precision": nan0(m["precision"]), "recall": nan0(m["recall"]),
            "n_ref": sum(len(v) for v in ref.values()), "n_est": sum(len(v) for v in est.values())}


_EVENT_PARAMS: dict[str, dict[str, Any]] = {
    "event_onset_200ms_fms": {"t_collar": 0.2, "evaluate_offset": False},
    "event_onset_50ms_fms": {"t_collar": 0.05, "evaluate_offset": False},
    "event_onset_offset_50ms_20perc_fms": {"t_collar": 0.05, "evaluate_offset": True, "percentage_of_length": 0.2},
}
_SCENE_SCORES = ("top1_acc", "pitch_acc", "chroma_acc", "mAP", "d_prime", "aucroc")
SCORES = _SCENE_SCORES + tuple(_EVENT_PARAMS) + ("segment_1s_er",)


def maximize(score: str) -> bool:
    """Whether a larger ``score`` is better (all HEAR scores but ``segment_1s_er``)."""
    return score != "segment_1s_er"


def scene_score(name: str, probs: np.ndarray, targets: np.ndarray) -> float:
    """A HEAR scene score of probabilities ``[N, C]`` against multi-hot targets ``[N, C]``:
    ``top1_acc``/``pitch_acc`` (argmax hits), ``chroma_acc`` (argmax mod 12), ``mAP`` and ``aucroc``
    (scikit-learn, macro over classes), ``d_prime`` (mean over classes of ``sqrt(2) * ppf(AUC)``);
    NaN where scikit-learn cannot score (a class without positives for the AUC scores)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if name in ("top1_acc", "pitch_acc"):
        return float(np.mean(probs.argmax(1) == targets.argmax(1)))
    if name == "chroma_acc":
        return float(np.mean(probs.argmax(1) % 12 == targets.argmax(1) % 12))
    if name == "mAP":
        return float(average_precision_score(targets, probs, average="macro"))
    try:
        if name == "aucroc":
            return float(roc_auc_score(targets, probs, average="macro"))
        if name == "d_prime":
            from scipy.stats import norm

            return float(np.mean(norm.ppf(roc_auc_score(targets, probs, average=None)) * math.sqrt(2.0)))
    except ValueError:
        return float("nan")
    raise ValueError(f"unknown scene score {name!r}; known: {_SCENE_SCORES}")


def event_score(name: str, reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]],
                labels: Sequence[str], *, nan_as_zero: bool = True) -> float:
    """A HEAR event score (sed_eval, micro over classes and files; events in ms dicts): the
    onset (and offset) F-measures of ``_EVENT_PARAMS`` or ``segment_1s_er`` (1 s segment error
    rate, lower is better). A system without estimated events scores F = 0 (``nan_as_zero``) or
    NaN (sed_eval's value)."""
    from audioflex.evaluate.metrics import event_based_metrics, segment_based_metrics

    ref, est = in_seconds(reference, estimated)
    if name == "segment_1s_er":
        return float(segment_based_metrics(ref, est, time_resolution=1.0, labels=labels)["error_rate"])
    if name not in _EVENT_PARAMS:
        raise ValueError(f"unknown event score {name!r}; known: {sorted(_EVENT_PARAMS) + ['segment_1s_er']}")
    p = {"percentage_of_length": 0.5, **_EVENT_PARAMS[name]}
    m = event_based_metrics(ref, est, evaluate_onset=True, labels=labels, zero_score_empty=False, **p)
    return nan0(m["f1"]) if nan_as_zero else float(m["f1"])


def task_scores(task: HearTask) -> list[str]:
    """The task's scores (``evaluation`` in its metadata; the first is the one optimised), or the
    HEAR default for its type."""
    names = list(task.metadata.get("evaluation") or [metric_name(task)])
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise TaskError(f"{task.root / 'task_metadata.json'}: unknown evaluation score(s) {unknown}; known: {SCORES}")
    kind = set(names) & (set(_EVENT_PARAMS) | {"segment_1s_er"})
    if bool(kind) != task.is_event or (kind and len(kind) != len(names)):
        raise TaskError(f"{task.root / 'task_metadata.json'}: scores {names} do not fit a "
                        f"{'event' if task.is_event else 'scene'} task")
    return names


__all__ = [
    "SCORES",
    "event_score",
    "hear_events",
    "in_seconds",
    "maximize",
    "nan0",
    "onset_f_measure",
    "scene_score",
    "task_scores",
]

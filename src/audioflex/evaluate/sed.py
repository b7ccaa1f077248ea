"""Sound event detection reports: event- and segment-based F1 and PSDS of estimated events.

:func:`event_report` scores the events a frame-head model estimated for a strongly labelled
dataset against the references through the ``sed_eval`` wrappers of :mod:`audioflex.evaluate.metrics`:

* event-based metrics (DCASE task 4 settings: onset collar 200 ms, offset collar
  ``max(200 ms, 20 % of the reference event's length)``),
* segment-based metrics (1 s segments, each clip's evaluated length = its audio duration),
* PSDS (DCASE scenario 1 settings, over a grid of decision thresholds) when the optional
  ``psds_eval`` package is importable; otherwise ``psds`` is ``None`` with a note.

The runner that produces the events (a checkpoint over every clip, sliding windows +
overlap-add) is :func:`audioflex.apps.sed.evaluate_events`; :func:`summary_line` is the one-line
summary ``audioflex evaluate`` prints.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from audioflex.data.records import ClipRecord
from audioflex.evaluate.events import Event, PerClass
from audioflex.evaluate.metrics import event_based_metrics, psds, segment_based_metrics

logger = logging.getLogger(__name__)

__all__ = ["PSDS_THRESHOLDS", "event_report", "has_events", "psds_available", "summary_line"]

PSDS_THRESHOLDS = tuple(float(x) for x in np.round(np.linspace(0.02, 0.98, 49), 4))
_PSDS_NOTE = "psds_eval is not installed (pip install psds_eval); PSDS skipped"


def has_events(records: Sequence[ClipRecord]) -> bool:
    """True if any record carries strong labels (an event dataset)."""
    return any(r.events for r in records)


def psds_available() -> bool:
    """Whether the optional ``psds_eval`` (and ``pandas``) import."""
    try:
        import pandas  # noqa: F401
        import psds_eval  # noqa: F401
    except ImportError:
        return False
    return True


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): float(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [float(x) for x in v]
    return float(v)


def summary_line(name: str, res: Mapping[str, Any]) -> str:
    """One line about an event report (or why it was skipped) of checkpoint ``name``."""
    if "skipped" in res and "event_based" not in res:
        return f"{name}: event metrics skipped ({res['skipped']})"
    ev, seg = res["event_based"], res["segment_based"]
    psds = f"{res['psds']:.3f}" if res.get("psds") is not None else f"n/a ({res['psds_note']})"
    return (
        f"{name}: event-based F1 {ev['f1']:.3f} (macro {ev['f1_macro']:.3f}, ER {ev['error_rate']:.3f}); "
        f"segment-based F1 {seg['f1']:.3f} (macro {seg['f1_macro']:.3f}, ER {seg['error_rate']:.3f}); "
        f"PSDS {psds}; {res['num_files']} files, {res['num_reference_events']} reference / "
        f"{res['num_estimated_events']} estimated events"
    )


def event_report(
    reference: Mapping[str, list[Event]],
    estimated: Mapping[str, list[Event]],
    durations: Mapping[str, float],
    *,
    labels: Sequence[str],
    postprocessing: Mapping[str, PerClass],
    by_threshold: Mapping[float, Mapping[str, list[Event]]] | None = None,
    psds_thresholds: Sequence[float] | None = PSDS_THRESHOLDS,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    time_resolution: float = 1.0,
    frame_hop_s: float | None = None,
    ignored: int = 0,
    skipped: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON-ready report of estimated vs reference events per file (``{file: [Event]}``).

    Args:
        reference, estimated: events per file, of the scored ``labels`` only.
        durations: seconds evaluated per file (segment-based metrics, PSDS).
        labels: the scored classes.
        postprocessing: the event post-processing used (recorded in the report).
        by_threshold: ``{threshold: estimated events per file}`` for PSDS (None: PSDS skipped).
        psds_thresholds: the thresholds asked for (``None``/empty: PSDS not requested).
        t_collar, percentage_of_length: event-based matching (onset collar in s; offset collar
            ``max(t_collar, percentage_of_length * reference length)``).
        time_resolution: segment length of the segment-based metrics (s).
        frame_hop_s, ignored, skipped: recorded as ``frame_hop_s``, ``ignored_estimated_events``
            (events of other classes dropped) and ``skipped`` (unreadable files).

    Returns:
        ``event_based`` and ``segment_based`` (the dicts of
        :func:`~audioflex.evaluate.metrics.event_based_metrics` /
        :func:`~audioflex.evaluate.metrics.segment_based_metrics`), ``psds`` (float or ``None``)
        and ``psds_note``, ``labels``, ``postprocessing``, ``frame_hop_s``, ``num_files``,
        ``num_reference_events``, ``num_estimated_events``, ``ignored_estimated_events``,
        ``skipped``.
    """
    scored = list(labels)
    event = event_based_metrics(reference, estimated, t_collar=t_collar,
                                percentage_of_length=percentage_of_length, labels=scored)
    segment = segment_based_metrics(reference, estimated, time_resolution=time_resolution,
                                    durations=durations, labels=scored)
    result: dict[str, Any] = {
        "labels": scored,
        "postprocessing": {k: _jsonable(v) for k, v in postprocessing.items()},
        "frame_hop_s": frame_hop_s,
        "num_files": len(reference),
        "num_reference_events": sum(len(v) for v in reference.values()),
        "num_estimated_events": sum(len(v) for v in estimated.values()),
        "ignored_estimated_events": ignored,
        "event_based": {"t_collar": t_collar, "percentage_of_length": percentage_of_length, **event},
        "segment_based": {"time_resolution": time_resolution, **segment},
        "psds": None,
        "psds_note": None,
        "skipped": list(skipped),
    }
    if psds_thresholds is None or len(psds_thresholds) == 0:
        result["psds_note"] = "PSDS not requested"
    elif by_threshold is None:
        result["psds_note"] = _PSDS_NOTE
        logger.info(_PSDS_NOTE)
    else:
        result["psds"] = psds(reference, by_threshold, durations)
        result["psds_note"] = f"DCASE scenario 1 settings over {len(by_threshold)} thresholds"
    return result

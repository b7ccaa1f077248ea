"""Sound event detection reports: event- and segment-based F1 and PSDS of estimated events.

:func:`event_report` scores the events a frame-head model estimated for a strongly labelled
dataset against the references through the ``sed_eval`` wrappers of :mod:`audioflex.evaluate.metrics`:

* event-based metrics (DCASE task 4 settings: onset collar 200 ms, offset collar
  ``max(200 ms, 20 % of the reference event's length)``),
* segment-based metrics (1 s segments, each clip's evaluated length = its audio duration),
* onset-only event-based metrics (200 ms onset collar),
* PSDS1 and PSDS2, computed by the caller on the raw frame scores (threshold-independent,
  :mod:`audioflex.evaluate.scores`, ``sed_scores_eval``) and stored as given.

The runner that produces the events (a checkpoint over every clip, sliding windows +
overlap-add) is :func:`audioflex.apps.sed.evaluate_events`; :func:`summary_line` is the one-line
summary ``audioflex evaluate`` prints, :func:`report_lines` the class-wise table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from audioflex.data.records import ClipRecord
from audioflex.evaluate.events import Event, PostProcessing
from audioflex.evaluate.metrics import event_based_metrics, onset_event_metrics, segment_based_metrics

logger = logging.getLogger(__name__)

__all__ = ["event_report", "has_events", "report_lines", "scores_available", "summary_line"]


def has_events(records: Sequence[ClipRecord]) -> bool:
    """True if any record carries strong labels (an event dataset)."""
    return any(r.events for r in records)


def scores_available() -> bool:
    """Whether ``sed_scores_eval`` (PSDS from frame scores, score files) imports."""
    try:
        from audioflex.evaluate.thirdparty import import_sed_scores_eval

        import_sed_scores_eval()
    except ImportError:
        return False
    return True


def _psds_text(res: Mapping[str, Any], key: str) -> str:
    value = res.get(key)
    return f"{value['psds']:.3f}" if isinstance(value, Mapping) else "n/a"


def summary_line(name: str, res: Mapping[str, Any]) -> str:
    """One line about an event report (or why it was skipped) of checkpoint ``name``."""
    if "skipped" in res and "event_based" not in res:
        return f"{name}: event metrics skipped ({res['skipped']})"
    ev, on, seg = res["event_based"], res["onset_based"], res["segment_based"]
    note = f" ({res['psds_note']})" if res.get("psds_note") else ""
    return (
        f"{name}: PSDS1 {_psds_text(res, 'psds1')}, PSDS2 {_psds_text(res, 'psds2')}{note}; "
        f"event F1 {ev['f1']:.3f} (macro {ev['f1_macro']:.3f}), onset F1 {on['f1']:.3f} "
        f"(macro {on['f1_macro']:.3f}); segment F1 {seg['f1']:.3f} (macro {seg['f1_macro']:.3f}, "
        f"ER {seg['error_rate']:.3f}); {res['num_files']} files, {res['num_reference_events']} reference / "
        f"{res['num_estimated_events']} estimated events"
    )


def report_lines(res: Mapping[str, Any]) -> list[str]:
    """The class-wise table and the post-processing used, as text lines."""
    if "event_based" not in res:
        return []
    lines = [f"{'class':<20} {'event F1':>9} {'onset F1':>9} {'seg F1':>7} {'seg ER':>7} {'PSDS1':>6} "
             f"{'thr':>5} {'median':>7} {'min dur':>7}"]
    post = res["postprocessing"]
    p1 = res.get("psds1") or {}

    def per(name: str, lab: str) -> float:
        v = post.get(name, 0.0)
        return float(v.get(lab, 0.0) if isinstance(v, Mapping) else v)

    for lab in res["labels"]:
        ev = res["event_based"]["class_wise"][lab]["f1"]
        on = res["onset_based"]["class_wise"][lab]["f1"]
        seg = res["segment_based"]["class_wise"][lab]
        ps = p1.get("class_wise", {}).get(lab)
        er = f"{seg['error_rate']:.3f}" if seg["n_ref"] else "n/a"  # no reference segment: ER undefined
        lines.append(
            f"{lab[:20]:<20} {ev:>9.3f} {on:>9.3f} {seg['f1']:>7.3f} {er:>7} "
            f"{'n/a' if ps is None else f'{ps:.3f}':>6} {per('thresholds', lab):>5.2f} "
            f"{per('median_filter_s', lab):>6.2f}s {per('min_duration_s', lab):>6.2f}s"
        )
    lines.append(f"post-processing: {res.get('tuned_on') or 'fixed (not tuned)'}")
    return lines


def event_report(
    reference: Mapping[str, list[Event]],
    estimated: Mapping[str, list[Event]],
    durations: Mapping[str, float],
    *,
    labels: Sequence[str],
    postprocessing: PostProcessing,
    psds: Mapping[str, Any] | None = None,
    psds_note: str | None = None,
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
        durations: seconds evaluated per file (segment-based metrics).
        labels: the scored classes.
        postprocessing: the event post-processing used (recorded in the report).
        psds: ``{"psds1": ..., "psds2": ...}`` from :func:`audioflex.evaluate.scores.psds_from_scores`
            (threshold-independent, so computed on the raw scores by the caller), or None.
        psds_note: why PSDS is missing, if it is.
        t_collar, percentage_of_length: event-based matching (onset collar in s; offset collar
            ``max(t_collar, percentage_of_length * reference length)``); the onset-only F1 uses
            ``t_collar``.
        time_resolution: segment length of the segment-based metrics (s).
        frame_hop_s, ignored, skipped: recorded as ``frame_hop_s``, ``ignored_estimated_events``
            (events of other classes dropped) and ``skipped`` (unreadable files).

    Returns:
        ``event_based`` (onset + offset), ``onset_based`` and ``segment_based`` (the dicts of
        :mod:`audioflex.evaluate.metrics`, class-wise and macro), ``psds1``/``psds2`` (or None) and
        ``psds_note``, ``labels``, ``postprocessing``, ``frame_hop_s``, ``num_files``,
        ``num_reference_events``, ``num_estimated_events``, ``ignored_estimated_events``,
        ``skipped``.
    """
    scored = list(labels)
    event = event_based_metrics(reference, estimated, t_collar=t_collar,
                                percentage_of_length=percentage_of_length, labels=scored)
    onset = onset_event_metrics(reference, estimated, t_collar=t_collar, labels=scored)
    segment = segment_based_metrics(reference, estimated, time_resolution=time_resolution,
                                    durations=durations, labels=scored)
    return {
        "labels": scored,
        "postprocessing": postprocessing.to_dict(),
        "frame_hop_s": frame_hop_s,
        "num_files": len(reference),
        "num_reference_events": sum(len(v) for v in reference.values()),
        "num_estimated_events": sum(len(v) for v in estimated.values()),
        "ignored_estimated_events": ignored,
        "event_based": {"t_collar": t_collar, "percentage_of_length": percentage_of_length, **event},
        "onset_based": {"t_collar": t_collar, **onset},
        "segment_based": {"time_resolution": time_resolution, **segment},
        "psds1": (psds or {}).get("psds1"),
        "psds2": (psds or {}).get("psds2"),
        "psds_note": psds_note,
        "skipped": list(skipped),
    }

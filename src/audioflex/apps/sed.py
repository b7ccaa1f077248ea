"""Sound event detection scores of checkpoints on a strongly labelled dataset (``audioflex evaluate``).

:func:`evaluate_events` runs a frame-head model (HTS-AT, or ElasticAST with ``frame_head=True``)
over every clip at its full length (sliding windows + overlap-add, ``Pipeline.frame_scores``,
the same path as ``Pipeline.detect``), turns the frame probabilities into events with the given
post-processing and scores them against the records' strong labels
(:func:`audioflex.evaluate.sed.event_report`: event- and segment-based F1, PSDS when
``psds_eval`` is installed).

Only the dataset's classes are scored (``labels``; default: every label of the records): estimated
events of other classes of a larger model (e.g. AudioSet's 527) are dropped and counted in
``ignored_estimated_events``.

:func:`add_event_metrics` is what ``audioflex evaluate`` calls for event datasets: it adds an
``events`` entry per checkpoint to the report JSON and prints a summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioflex.audio.io import AudioError, load_audio
from audioflex.data.records import ClipRecord
from audioflex.evaluate.events import Event, PerClass, frames_to_events
from audioflex.evaluate.sed import PSDS_THRESHOLDS, event_report, has_events, psds_available, summary_line
from audioflex.inference.frames import scores_to_events
from audioflex.inference.pipeline import Pipeline
from audioflex.inference.windows import plan_windows

logger = logging.getLogger(__name__)

__all__ = ["add_event_metrics", "evaluate_events"]


def _keys(records: Sequence[ClipRecord]) -> list[str]:
    """A unique file key per record: its path (``path#k`` for repeated paths)."""
    seen: dict[str, int] = {}
    out = []
    for r in records:
        k = str(r.path)
        n = seen.get(k, 0)
        seen[k] = n + 1
        out.append(k if n == 0 else f"{k}#{n}")
    return out


def _source(record: ClipRecord, sample_rate: int) -> str | torch.Tensor:
    """The clip as a path (whole file, streamed) or a loaded waveform (a part of a file)."""
    if record.start == 0.0 and record.end is None:
        return str(record.path)
    dur = None if record.end is None else record.end - record.start
    return load_audio(record.path, sample_rate, offset=record.start, duration=dur)


def evaluate_events(
    checkpoint: str | Path | Pipeline,
    records: Sequence[ClipRecord],
    *,
    thresholds: PerClass = 0.5,
    median_filter_s: PerClass = 0.0,
    min_duration_s: PerClass = 0.0,
    merge_gap_s: PerClass = 0.0,
    labels: Sequence[str] | None = None,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    time_resolution: float = 1.0,
    psds_thresholds: Sequence[float] | None = PSDS_THRESHOLDS,
    hop: float = 0.5,
    device: str = "cpu",
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Event- and segment-based F1 (and PSDS if ``psds_eval`` is installed) of a checkpoint.

    Args:
        checkpoint: an audioflex checkpoint directory or a ready ``Pipeline`` (frame-head model).
        records: clips with strong labels (``ClipRecord.events``, seconds from the clip start).
        thresholds, median_filter_s, min_duration_s, merge_gap_s: event post-processing
            (:func:`audioflex.evaluate.events.frames_to_events`; one value, one per class or a
            ``{label: value}`` dict over the model's labels).
        labels: classes to score (default: every label of the records' events and clip labels).
        t_collar, percentage_of_length: event-based matching (onset collar in s; offset collar
            ``max(t_collar, percentage_of_length * reference length)``).
        time_resolution: segment length of the segment-based metrics (s).
        psds_thresholds: decision thresholds of the PSDS operating points (``None``: no PSDS).
        hop: window hop (fraction of the model's window).
        device, batch_size: where and how many windows per forward.
        progress: called with 1 after each clip.

    Returns:
        JSON-ready dict: ``event_based`` and ``segment_based`` (the dicts of
        :func:`~audioflex.evaluate.metrics.event_based_metrics` /
        :func:`~audioflex.evaluate.metrics.segment_based_metrics`), ``psds`` (float or ``None``)
        and ``psds_note``, ``labels``, ``postprocessing``, ``frame_hop_s``, ``num_files``,
        ``num_reference_events``, ``num_estimated_events``, ``ignored_estimated_events``,
        ``skipped`` (unreadable files, logged and left out).

    Raises:
        ValueError: no records, no strong labels, event labels unknown to the model, or a model
            without a frame-wise head.
    """
    if not records:
        raise ValueError("evaluate_events: no records to evaluate")
    if not has_events(records):
        raise ValueError(
            "evaluate_events: the records carry no strong labels (events); read a DESED-style "
            "TSV (read_dataset(tsv, kind='strong'))"
        )
    if isinstance(checkpoint, Pipeline):
        pipe = checkpoint
    else:
        pipe = Pipeline.from_checkpoint(checkpoint, device=device, batch_size=batch_size, window_hop=hop)
    plan_windows(pipe.model, pipe.frontend, hop=pipe.window_hop)  # no frame head: clear ValueError
    model_labels = list(pipe.labels)
    found = sorted({e.label for r in records for e in r.events} | {x for r in records for x in r.labels})
    unknown = sorted(set(found) - set(model_labels))
    if unknown:
        raise ValueError(
            f"evaluate_events: label(s) {unknown[:5]} of the dataset are not among the checkpoint's "
            f"{len(model_labels)} labels; evaluate a checkpoint trained on these classes"
        )
    scored = list(labels) if labels is not None else found
    bad = sorted(set(scored) - set(model_labels))
    if bad:
        raise ValueError(f"evaluate_events: labels {bad[:5]} are not among the checkpoint's labels")
    keep = set(scored)
    post = {"thresholds": thresholds, "median_filter_s": median_filter_s,
            "min_duration_s": min_duration_s, "merge_gap_s": merge_gap_s}
    frames_to_events(np.zeros((1, len(model_labels))), 1.0, model_labels, **post)  # bad options fail early

    want_psds = psds_thresholds is not None and len(psds_thresholds) > 0 and psds_available()
    reference: dict[str, list[Event]] = {}
    estimated: dict[str, list[Event]] = {}
    by_thr: dict[float, dict[str, list[Event]]] = {float(t): {} for t in (psds_thresholds or ())}
    durations: dict[str, float] = {}
    skipped: list[str] = []
    ignored = 0
    frame_hop = None
    for key, rec in zip(_keys(records), records):
        try:
            scores = pipe.frame_scores(_source(rec, pipe.sample_rate))
        except (AudioError, OSError) as e:
            logger.warning("evaluate_events: skipping %s (%s)", key, e)
            skipped.append(key)
            continue
        frame_hop = scores.frame_hop_s
        events = scores_to_events(scores, **post)
        ignored += sum(e.label not in keep for e in events)
        estimated[key] = [Event(e.onset, e.offset, e.label) for e in events if e.label in keep]
        reference[key] = [e for e in rec.events if e.label in keep]
        durations[key] = max(scores.duration_s, max((e.offset for e in rec.events), default=0.0))
        if want_psds:
            for t in by_thr:
                evs = scores_to_events(scores, **{**post, "thresholds": t})
                by_thr[t][key] = [Event(e.onset, e.offset, e.label) for e in evs if e.label in keep]
        if progress is not None:
            progress(1)
    if not reference:
        raise ValueError(f"evaluate_events: none of the {len(records)} files could be read (see the log)")
    return event_report(
        reference, estimated, durations, labels=scored, postprocessing=post,
        by_threshold=by_thr if want_psds else None, psds_thresholds=psds_thresholds, t_collar=t_collar,
        percentage_of_length=percentage_of_length, time_resolution=time_resolution, frame_hop_s=frame_hop,
        ignored=ignored, skipped=skipped,
    )


def add_event_metrics(
    report_json: str | Path,
    checkpoints: Sequence[str | Path],
    records: Sequence[ClipRecord],
    *,
    device: str = "cpu",
    say: Callable[[str], Any] | None = None,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """``audioflex evaluate`` on an event dataset: :func:`evaluate_events` for every checkpoint
    whose model has a frame-wise head, stored as ``"events"`` in that checkpoint's entry of
    ``report_json`` (the list written by ``evaluate.lengths.write_json``), and a one-line summary
    per checkpoint through ``say``. Checkpoints without a frame head get
    ``{"skipped": reason}``. Datasets without strong labels: nothing happens (returns ``{}``).
    ``options`` go to :func:`evaluate_events`.
    """
    if not has_events(records):
        return {}
    path = Path(report_json)
    doc = json.loads(path.read_text()) if path.is_file() else []
    results: dict[str, dict[str, Any]] = {}
    batch_size = int(options.pop("batch_size", 8))
    for ck in checkpoints:
        pipe = Pipeline.from_checkpoint(ck, device=device, batch_size=batch_size)
        try:
            res = evaluate_events(pipe, records, **options)
        except ValueError as e:
            if "frame-wise head" not in str(e):
                raise
            res = {"skipped": str(e)}
            logger.warning("%s: no event metrics (%s)", ck, e)
        results[str(ck)] = res
        for entry in doc:
            if isinstance(entry, dict) and entry.get("checkpoint") == str(ck):
                entry["events"] = res
        if say is not None:
            say(summary_line(Path(ck).name, res))
    if doc:
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return results

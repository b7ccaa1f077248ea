"""Evaluation is pure scoring: clip and SED metrics, event post-processing, report I/O.

Nothing here calls a model: the runners that do (file-level detection, evaluation at several
lengths, event-dataset evaluation) are in :mod:`audioflex.apps`, any-length inference in
:mod:`audioflex.inference`. ``metrics`` and ``events`` are re-exported here; ``lengths`` (report
tables, JSON and plots) and ``sed`` (event-metric reports) are imported from their modules.
``sed_eval`` / ``psds_eval`` load only when an SED metric is called.
"""

from audioflex.evaluate.events import (
    Event,
    FileEvent,
    PostProcessing,
    as_event,
    events_by_file,
    frames_to_events,
    read_events,
    read_events_json,
    read_events_tsv,
    write_events_json,
    write_events_tsv,
)
from audioflex.evaluate.metrics import (
    accuracy,
    class_auc,
    class_average_precision,
    clip_metrics,
    d_prime,
    event_based_metrics,
    mean_auc,
    mean_average_precision,
    onset_event_metrics,
    psds,
    segment_based_metrics,
    top_k_accuracy,
)

__all__ = [
    "Event",
    "FileEvent",
    "accuracy",
    "as_event",
    "class_auc",
    "class_average_precision",
    "clip_metrics",
    "d_prime",
    "event_based_metrics",
    "events_by_file",
    "PostProcessing",
    "frames_to_events",
    "mean_auc",
    "mean_average_precision",
    "onset_event_metrics",
    "psds",
    "read_events",
    "read_events_json",
    "read_events_tsv",
    "segment_based_metrics",
    "top_k_accuracy",
    "write_events_json",
    "write_events_tsv",
]

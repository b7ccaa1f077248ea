"""Datasets: records, label vocabularies and readers for the standard layouts.

Where things are: ``records`` (ClipRecord, LabelSet, ReadResult), ``readers/`` (one module per
layout), ``durations`` (from file headers), ``targets`` (strong labels -> frame targets),
``samplers``, ``shards``, and ``datasets/`` (training datasets, collator, batches, streaming).
Everything :mod:`audioflex.data.readers` exports (its ``__all__``) is exported here too.
"""

from audioflex.data import readers as _readers
from audioflex.data.durations import with_durations
from audioflex.data.readers import *  # noqa: F403  (re-exports readers.__all__)
from audioflex.data.records import SPLITS, ClipRecord, Event, LabelSet, ReadResult, normalize_split

__all__ = [
    *_readers.__all__,
    "SPLITS",
    "ClipRecord",
    "Event",
    "LabelSet",
    "ReadResult",
    "normalize_split",
    "with_durations",
]

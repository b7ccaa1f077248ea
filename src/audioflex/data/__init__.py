"""Datasets: records, label vocabularies and readers for the standard layouts.

Where things are: ``records`` (ClipRecord, LabelSet, ReadResult), ``readers/`` (one module per
layout), ``durations`` (from file headers), ``targets`` (strong labels -> frame targets),
``samplers``, ``shards``, and ``datasets/`` (training datasets, collator, batches, streaming).
"""

from audioflex.data.durations import with_durations
from audioflex.data.readers import (
    AUDIO_EXTENSIONS,
    DatasetError,
    detect_kind,
    read_audioset,
    read_dataset,
    read_esc50,
    read_folder,
    read_manifest,
    read_speech_commands,
    read_strong_labels,
)
from audioflex.data.records import (
    SPLITS,
    ClipRecord,
    Event,
    LabelSet,
    ReadResult,
    normalize_split,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "SPLITS",
    "ClipRecord",
    "DatasetError",
    "Event",
    "LabelSet",
    "ReadResult",
    "detect_kind",
    "normalize_split",
    "read_audioset",
    "read_dataset",
    "read_esc50",
    "read_folder",
    "read_manifest",
    "read_speech_commands",
    "read_strong_labels",
    "with_durations",
]

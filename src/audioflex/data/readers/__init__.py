"""Readers for the standard dataset layouts, as distributed, into ``ClipRecord`` lists.

Every reader returns a :class:`~audioflex.data.records.ReadResult` (records, label vocabulary,
missing files, warnings). Files named by the metadata but absent on disk are reported, not fatal;
malformed metadata raises :class:`DatasetError` naming the file and line. Audio is never opened
(durations: :func:`~audioflex.data.durations.with_durations`).

One module per layout: :mod:`.esc50`, :mod:`.speech_commands`, :mod:`.audioset` (segment CSVs),
:mod:`.strong` (DESED strong-label TSVs), :mod:`.manifest` (CSV/TSV/JSONL manifests) and
:mod:`.folder` (folder per class); :mod:`.common` holds what they share and :mod:`.detect` tells
the layouts apart (:func:`read_dataset`).
"""

from audioflex.data.readers.audioset import (
    index_audio_dir,
    read_audioset,
    read_audioset_labels,
    read_audioset_segments,
)
from audioflex.data.readers.common import AUDIO_EXTENSIONS, DatasetError
from audioflex.data.readers.detect import READERS, detect_kind, read_dataset
from audioflex.data.readers.esc50 import read_esc50
from audioflex.data.readers.folder import read_folder
from audioflex.data.readers.manifest import read_manifest, split_labels
from audioflex.data.readers.speech_commands import read_speech_commands
from audioflex.data.readers.strong import read_strong_labels

__all__ = [
    "AUDIO_EXTENSIONS",
    "READERS",
    "DatasetError",
    "detect_kind",
    "index_audio_dir",
    "read_audioset",
    "read_audioset_labels",
    "read_audioset_segments",
    "read_dataset",
    "read_esc50",
    "read_folder",
    "read_manifest",
    "read_speech_commands",
    "read_strong_labels",
    "split_labels",
]

"""Which layout a dataset path is (:func:`detect_kind`) and :func:`read_dataset`, which reads any of them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioflex.data.readers.audioset import read_audioset
from audioflex.data.readers.common import DatasetError
from audioflex.data.readers.esc50 import read_esc50
from audioflex.data.readers.folder import read_folder
from audioflex.data.readers.manifest import MANIFEST_NAMES, read_manifest
from audioflex.data.readers.speech_commands import read_speech_commands
from audioflex.data.readers.strong import read_strong_labels
from audioflex.data.records import ReadResult

logger = logging.getLogger(__name__)

READERS: dict[str, Callable[..., ReadResult]] = {
    "esc50": read_esc50,
    "speechcommands": read_speech_commands,
    "audioset": read_audioset,
    "strong": read_strong_labels,
    "desed": read_strong_labels,
    "manifest": read_manifest,
    "folder": read_folder,
}


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        return fh.readline()


def detect_kind(spec: str | Path) -> tuple[str, Path]:
    """Guess the layout of ``spec`` (a directory or metadata file) -> (kind, reader path)."""
    path = Path(spec)
    if path.is_file():
        name, suffix = path.name.lower(), path.suffix.lower()
        if name == "esc50.csv" and path.parent.name == "meta":
            return "esc50", path.parent.parent
        if name == "class_labels_indices.csv":
            return "audioset", path.parent
        if suffix == ".jsonl":
            return "manifest", path
        first = _first_line(path)
        if suffix == ".csv" and (
            first.startswith("# Segments csv") or name.endswith("_segments.csv")
        ):
            return "audioset", path
        if suffix == ".tsv":
            cols = [c.strip().lower() for c in first.split("\t")]
            if cols[:1] == ["filename"] and (
                "onset" in cols or "event_labels" in cols or "event_label" in cols
            ):
                return "strong", path
            return "manifest", path
        if suffix == ".csv":
            return "manifest", path
        raise DatasetError(
            f"{path}: unknown metadata file type (expected .csv, .tsv or .jsonl); pass kind=..."
        )
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or directory")
    if (path / "meta" / "esc50.csv").is_file():
        return "esc50", path
    if (path / "validation_list.txt").is_file() or (path / "testing_list.txt").is_file():
        return "speechcommands", path
    if (path / "class_labels_indices.csv").is_file():
        return "audioset", path
    for m in MANIFEST_NAMES:
        if (path / m).is_file():
            return "manifest", path / m
    return "folder", path


def read_dataset(spec: str | Path, *, kind: str | None = None, **options: Any) -> ReadResult:
    """Read any supported dataset: ``spec`` is a directory or a metadata file.

    Detection (``kind=None``): ``meta/esc50.csv`` -> ``esc50``; ``validation_list.txt`` ->
    ``speechcommands``; ``class_labels_indices.csv`` (or a segment CSV) -> ``audioset``; a TSV with
    ``filename, onset, offset, event_label`` -> ``strong``; another CSV/TSV/JSONL (or a directory
    with ``manifest.csv/.tsv/.jsonl``) -> ``manifest``; otherwise a folder per class -> ``folder``.
    ``options`` go to the reader (e.g. ``audio_dir=`` for AudioSet and DESED).
    """
    if kind is None:
        kind, target = detect_kind(spec)
        logger.debug("read_dataset: %s detected as %r", spec, kind)
    else:
        if kind not in READERS:
            raise ValueError(
                f"read_dataset: unknown kind {kind!r}; choose one of {sorted(READERS)}"
            )
        target = Path(spec)
    try:
        return READERS[kind](target, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"read_dataset(kind={kind!r}): {exc}") from None
        raise

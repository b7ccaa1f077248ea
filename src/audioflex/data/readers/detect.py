"""Which layout a dataset path is (:func:`detect_kind`) and :func:`read_dataset`, which reads any of them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioflex.data.readers.audioset import read_audioset
from audioflex.data.readers.common import DatasetError, header_of
from audioflex.data.readers.desed import is_label_tsv, is_release_layout, label_tsvs, read_desed
from audioflex.data.readers.esc50 import FILE_COLUMNS, LABEL_COLUMNS, find_esc50_table, is_clip_table, read_esc50
from audioflex.data.readers.folder import read_folder
from audioflex.data.readers.manifest import MANIFEST_NAMES, read_manifest
from audioflex.data.readers.speech_commands import read_speech_commands
from audioflex.data.readers.splits import apply_splits, find_split_files, read_split_files
from audioflex.data.readers.strong import read_strong_labels
from audioflex.data.records import ReadResult

logger = logging.getLogger(__name__)

READERS: dict[str, Callable[..., ReadResult]] = {
    "esc50": read_esc50,
    "speechcommands": read_speech_commands,
    "audioset": read_audioset,
    "strong": read_strong_labels,
    "desed": read_desed,
    "manifest": read_manifest,
    "folder": read_folder,
}


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        return fh.readline()


def _detect_file(path: Path) -> tuple[str, Path]:
    name, suffix = path.name.lower(), path.suffix.lower()
    if name == "esc50.csv" and path.parent.name == "meta":
        return "esc50", path.parent.parent
    if name == "class_labels_indices.csv":
        return "audioset", path.parent
    if suffix == ".jsonl":
        return "manifest", path
    first = _first_line(path)
    if suffix == ".csv" and (first.startswith("# Segments csv") or name.endswith("_segments.csv")):
        return "audioset", path
    if suffix == ".tsv":
        return ("strong" if is_label_tsv(path) else "manifest"), path
    if suffix == ".csv":
        return ("esc50" if is_clip_table(path) else "manifest"), path
    raise DatasetError(f"{path}: unknown metadata file type (expected .csv, .tsv or .jsonl); pass kind=...")


def _table_csvs(path: Path) -> list[Path]:
    """CSVs at ``path`` or in ``path/meta`` whose header names a file and a label column."""
    out = []
    for where in (path, path / "meta"):
        for p in sorted(where.glob("*.csv")) if where.is_dir() else ():
            cols = header_of(p)
            if any(c in cols for c in FILE_COLUMNS) and any(c in cols for c in (*LABEL_COLUMNS, "labels")):
                out.append(p)
    return out


def detect_kind(spec: str | Path) -> tuple[str, Path]:
    """Guess the layout of ``spec`` (a directory or metadata file) -> (kind, reader path).

    Metadata files are looked for before a directory is taken as a folder per class.
    """
    path = Path(spec)
    if path.is_file():
        return _detect_file(path)
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
    if is_release_layout(path) or label_tsvs(path):
        return "desed", path
    if find_esc50_table(path) is not None:
        return "esc50", path
    tables = _table_csvs(path)
    if len(tables) == 1:
        return "manifest", tables[0]
    if len(tables) > 1:
        raise DatasetError(
            f"{path}: several metadata CSVs ({', '.join(p.name for p in tables)}); pass the one to read"
        )
    return "folder", path


def _root(kind: str, target: Path) -> Path:
    if target.is_dir():
        return target
    return target.parent.parent if target.parent.name in ("meta", "metadata") else target.parent


def read_dataset(
    spec: str | Path, *, kind: str | None = None, split_file: str | Path | None = None, **options: Any
) -> ReadResult:
    """Read any supported dataset: ``spec`` is a directory or a metadata file.

    Detection (``kind=None``), metadata first: ``meta/esc50.csv`` -> ``esc50``;
    ``validation_list.txt`` -> ``speechcommands``; ``class_labels_indices.csv`` (or a segment
    CSV) -> ``audioset``; ``manifest.csv/.tsv/.jsonl`` -> ``manifest``; ``metadata/<split>/*.tsv``
    or a label TSV (``filename, onset, offset, event_label``) at the root -> ``desed`` (a TSV
    given itself -> ``strong``); a CSV with ``filename, fold`` and a label column -> ``esc50``;
    another CSV with a file and a label column -> ``manifest``; otherwise a folder per class ->
    ``folder`` (one class only is an error naming the metadata it ignored).

    Split files (``split.csv`` = ``filename,split``; ``<split>_list.txt``) in the dataset folder,
    its ``meta/`` or ``metadata/`` -- or ``split_file`` -- give clips their split (clips that
    already have one keep it). ``options`` go to the reader (e.g. ``audio_dir=``).
    """
    if kind is None:
        kind, target = detect_kind(spec)
        logger.debug("read_dataset: %s detected as %r", spec, kind)
    else:
        if kind not in READERS:
            raise ValueError(f"read_dataset: unknown kind {kind!r}; choose one of {sorted(READERS)}")
        target = Path(spec)
    if options.get("audio_dir") is not None and not Path(options["audio_dir"]).is_dir():
        raise DatasetError(f"{options['audio_dir']}: audio_dir is not a directory")
    try:
        result = READERS[kind](target, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(f"read_dataset(kind={kind!r}): {exc}") from None
        raise
    if kind == "speechcommands" and split_file is None:
        return result
    root = _root(kind, target)
    files = [Path(split_file)] if split_file is not None else find_split_files(root)
    if files:
        mapping, rest_is_train = read_split_files(files)
        apply_splits(result, mapping, source=", ".join(f.name for f in files), root=root,
                     rest_is_train=rest_is_train)
    return result

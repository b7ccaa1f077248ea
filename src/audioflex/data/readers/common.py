"""What every layout reader shares: the error type, number parsing, file listing, missing-file report.

Malformed metadata raises :class:`DatasetError` with one line naming the file (and line); files
the metadata names but the disk lacks are reported (:func:`report_missing`), not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audioflex.data.records import ReadResult

AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".mp3",
    ".m4a",
    ".opus",
    ".aac",
    ".aiff",
    ".aif",
    ".webm",
)

_MAX_LISTED = 5


class DatasetError(ValueError):
    """Malformed dataset metadata or an unusable layout; the message names the file (and line)."""


def metadata_error(path: Path | str, line: int | None, problem: str) -> DatasetError:
    """A :class:`DatasetError` reading ``"<path>:<line>: <problem>"`` (no line: ``"<path>: ..."``)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetError(f"{where}: {problem}")


def is_audio(name: str, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> bool:
    """Whether file ``name`` has one of the audio ``extensions`` (hidden files never do)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions


def list_files(directory: Path) -> set[str]:
    """Names of the files directly inside ``directory`` (empty set if it does not exist)."""
    try:
        with os.scandir(directory) as it:
            return {e.name for e in it if not e.is_dir()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def report_missing(
    result: ReadResult, missing: list[str], total: int, what: str, where: Path
) -> None:
    """Add ``missing`` (of ``total`` ``what``) to ``result`` with one warning naming a few of them."""
    if not missing:
        return
    result.missing.extend(missing)
    shown = ", ".join(missing[:_MAX_LISTED]) + (", ..." if len(missing) > _MAX_LISTED else "")
    result.warn(
        f"{len(missing)} of {total} {what} have no audio file in {where} (left out): {shown}"
    )


def parse_float(text: str, path: Path, line: int, column: str) -> float:
    """A finite number from field ``column`` at ``path:line``, else a :class:`DatasetError`."""
    try:
        value = float(text)
    except ValueError:
        raise metadata_error(path, line, f"{column} must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise metadata_error(path, line, f"{column} must be finite, got {text!r}")
    return value


def parse_int(text: str, path: Path, line: int, column: str) -> int:
    """An integer from field ``column`` at ``path:line``, else a :class:`DatasetError`."""
    try:
        return int(str(text).strip())
    except ValueError:
        raise metadata_error(path, line, f"{column} must be an integer, got {text!r}") from None


def open_text(path: Path) -> Any:
    """``path`` opened for CSV reading (UTF-8, BOM dropped); a missing file is a :class:`DatasetError`."""
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, expected a metadata file") from None

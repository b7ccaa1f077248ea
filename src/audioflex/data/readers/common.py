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
    result: ReadResult, missing: list[str], total: int, what: str, where: Path | str, *, hint: str = ""
) -> None:
    """Add ``missing`` (of ``total`` ``what``) to ``result`` with one warning naming a few of them
    (and ``hint``, what to do, when given)."""
    if not missing:
        return
    result.missing.extend(missing)
    shown = ", ".join(missing[:_MAX_LISTED]) + (", ..." if len(missing) > _MAX_LISTED else "")
    result.warn(
        f"{len(missing)} of {total} {what} have no audio file in {where} (left out): {shown}"
        + (f"; {hint}" if hint else "")
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


AUDIO_DIR_HINT = "if the audio is elsewhere, pass audio_dir=... (CLI: --audio-dir)"
METADATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".txt")


def header_of(path: Path) -> list[str]:
    """The lower-cased, stripped column names of a CSV/TSV's first line (``[]`` if unreadable)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return []
    sep = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    return [c.strip().strip('"').lower() for c in first.rstrip("\r\n").split(sep)]


def metadata_files(root: Path) -> list[Path]:
    """Metadata-looking files (CSV/TSV/JSON(L)/TXT) directly in ``root``, ``root/meta`` and
    ``root/metadata`` (recursively there), sorted; what a folder-per-class read would ignore."""
    found: list[Path] = []
    for where in (root, root / "meta", root / "metadata"):
        if not where.is_dir():
            continue
        walk = where.rglob("*") if where != root else where.iterdir()
        found.extend(p for p in walk if p.is_file() and p.suffix.lower() in METADATA_SUFFIXES
                     and not p.name.startswith("."))
    return sorted(set(found))


class AudioLocator:
    """Finds the audio file a metadata row names, trying several folders in order.

    ``find(name)`` tries ``base / name`` for each base (listing each folder once), then, when
    ``index`` is given, a recursive index of those folders by file name (for layouts whose audio
    sits in sub-folders the metadata does not name).
    """

    def __init__(self, bases: Sequence[Path], *, index: bool = False) -> None:
        self.bases = [Path(b) for b in dict.fromkeys(bases)]
        self._listing: dict[Path, set[str]] = {}
        self._index: dict[str, Path] | None = None
        self._use_index = index

    def _has(self, path: Path) -> bool:
        parent = path.parent
        if parent not in self._listing:
            self._listing[parent] = list_files(parent)
        return path.name in self._listing[parent]

    def find(self, name: str) -> Path | None:
        """The file ``name`` (relative, or absolute) resolves to, or None."""
        rel = Path(os.path.expanduser(name.strip().replace("\\", "/")))
        if rel.is_absolute():
            return rel if self._has(rel) else None
        for base in self.bases:
            if self._has(base / rel):
                return base / rel
        if self._use_index:
            if self._index is None:
                self._index = {}
                for base in self.bases:
                    for dirpath, dirnames, filenames in os.walk(base):
                        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                        for f in sorted(filenames):
                            self._index.setdefault(f, Path(dirpath) / f)
            return self._index.get(rel.name)
        return None

    def where(self) -> str:
        """The folders searched, for messages."""
        return " or ".join(str(b) for b in self.bases)

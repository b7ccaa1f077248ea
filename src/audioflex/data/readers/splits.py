"""Split files beside a dataset: ``split.csv`` (``filename,split``) and ``*_list.txt`` lists.

:func:`find_split_files` finds them in a dataset folder (and its ``meta/``/``metadata/``),
:func:`read_split_files` reads them into ``{file key: split}`` and :func:`apply_splits` gives the
records their split. Keys match a record by its relative path, file name, stem or id. A record
that already has a different split keeps it (with a warning): a split file never silently
relabels a clip.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from audioflex.data.readers.common import DatasetError, metadata_error, open_text
from audioflex.data.records import ClipRecord, ReadResult, normalize_split

SPLIT_TABLES = ("split.csv", "splits.csv", "split.tsv", "splits.tsv")
_LIST_SPLITS = {
    "train": "train", "training": "train", "valid": "valid", "validation": "valid", "val": "valid",
    "dev": "valid", "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}


def _list_split(path: Path) -> str | None:
    """``validation_list.txt`` -> ``valid``; None for other names."""
    name = path.name.lower()
    if not name.endswith("_list.txt"):
        return None
    return _LIST_SPLITS.get(name[: -len("_list.txt")])


def find_split_files(root: Path) -> list[Path]:
    """Split tables and ``<split>_list.txt`` files in ``root``, ``root/meta`` or ``root/metadata``."""
    found = []
    for where in (root, root / "meta", root / "metadata"):
        if not where.is_dir():
            continue
        for p in sorted(where.iterdir()):
            if p.is_file() and (p.name.lower() in SPLIT_TABLES or _list_split(p) is not None):
                found.append(p)
    return found


def _key(text: str) -> str:
    return text.strip().replace("\\", "/").lstrip("./")


def _read_table(path: Path) -> dict[str, str]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    out: dict[str, str] = {}
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = [h.strip().lower() for h in next(reader, [])]
        fcol = next((header.index(c) for c in ("filename", "file", "path", "id") if c in header), None)
        if fcol is None or "split" not in header:
            raise metadata_error(path, 1, f"expected a header with filename and split columns, got {header}")
        scol = header.index("split")
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) <= max(fcol, scol):
                raise metadata_error(path, reader.line_num, f"expected {len(header)} fields, got {len(row)}")
            try:
                split = normalize_split(row[scol], where=f"{path}:{reader.line_num}")
            except ValueError as exc:
                raise DatasetError(str(exc)) from None
            if split is not None:
                out[_key(row[fcol])] = split
    return out


def read_split_files(paths: Iterable[Path]) -> tuple[dict[str, str], bool]:
    """Split files -> (``{key: split}``, whether unlisted clips are ``train``).

    Unlisted clips are ``train`` when only ``validation``/``testing`` lists are given (the
    Speech Commands convention), otherwise they keep no split.
    """
    mapping: dict[str, str] = {}
    lists: set[str] = set()
    for path in paths:
        split = _list_split(path)
        if split is None:
            mapping.update(_read_table(path))
            continue
        lists.add(split)
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    mapping[_key(line)] = split
    rest_is_train = bool(lists) and "train" not in lists and "train" not in mapping.values()
    return mapping, rest_is_train


def _candidates(record: ClipRecord, root: Path | None) -> list[str]:
    keys = []
    if root is not None and record.path.is_relative_to(root):
        keys.append(record.path.relative_to(root).as_posix())
    keys += [record.path.name, record.path.stem, record.id, f"{record.id}{record.path.suffix}"]
    if root is not None and len(Path(keys[0]).parts) > 1:
        keys.append(Path(*Path(keys[0]).parts[1:]).as_posix())  # audio/x.wav listed as x.wav
    return keys


def apply_splits(
    result: ReadResult, mapping: Mapping[str, str], *, source: str, root: Path | None = None,
    rest_is_train: bool = False,
) -> ReadResult:
    """Give ``result``'s records the split ``mapping`` names (``source`` names the file(s) in
    warnings); clips not listed keep theirs (``train`` when ``rest_is_train``)."""
    if not mapping:
        return result
    records, unlisted, conflicts = [], 0, 0
    for r in result.records:
        split = next((mapping[k] for k in _candidates(r, root) if k in mapping), None)
        if split is None:
            unlisted += 1
            split = r.split or ("train" if rest_is_train else None)
        elif r.split is not None and r.split != split:
            conflicts += 1
            split = r.split
        records.append(dataclasses.replace(r, split=split) if split != r.split else r)
    result.records = records
    if conflicts:
        result.warn(f"{source}: {conflicts} clip(s) already had another split (from the metadata); kept it")
    if unlisted and not rest_is_train:
        result.warn(f"{source}: {unlisted} of {len(records)} clip(s) are not listed (they get no split)")
    return result

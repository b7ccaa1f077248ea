"""Generic manifests: a CSV/TSV with a header or a JSONL file, one clip per row (path, labels, split...)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from audioflex.data.readers.common import (
    AUDIO_DIR_HINT,
    AudioLocator,
    DatasetError,
    metadata_error,
    open_text,
    parse_float,
    parse_int,
    report_missing,
)
from audioflex.data.records import ClipRecord, Event, LabelSet, ReadResult, normalize_split

MANIFEST_NAMES = ("manifest.csv", "manifest.tsv", "manifest.jsonl")
_PATH_COLUMNS = ("path", "filename", "file", "audio", "audio_path", "filepath", "wav")
_LABEL_COLUMNS = ("labels", "label", "category", "class", "classes", "target")


def split_labels(text: str) -> tuple[str, ...]:
    """A manifest label field -> names: split on ``;`` if present, else on ``,``; blanks dropped.

    Label names containing commas (AudioSet display names) need ``;`` as the separator.
    """
    sep = ";" if ";" in text else ","
    return tuple(x.strip() for x in text.split(sep) if x.strip())


def _pick(columns: Sequence[str], options: Sequence[str]) -> str | None:
    for c in options:
        if c in columns:
            return c
    return None


def _manifest_record(
    entry: dict[str, Any],
    base: Path,
    path_file: Path,
    line: int,
    path_key: str,
    label_key: str | None,
) -> ClipRecord:
    raw = entry.get(path_key)
    if not isinstance(raw, str) or not raw.strip():
        raise metadata_error(path_file, line, f"empty or missing {path_key!r}")
    path = Path(os.path.expanduser(raw.strip()))
    if not path.is_absolute():
        path = base / path
    labels_raw = entry.get(label_key) if label_key else None
    if labels_raw is None:
        labels: tuple[str, ...] = ()
    elif isinstance(labels_raw, str):
        labels = split_labels(labels_raw)
    elif isinstance(labels_raw, (list, tuple)) and all(isinstance(x, str) for x in labels_raw):
        labels = tuple(x.strip() for x in labels_raw if x.strip())
    else:
        raise metadata_error(
            path_file,
            line,
            f"{label_key!r} must be a string or a list of strings, got {labels_raw!r}",
        )
    fold = entry.get("fold")
    fold = None if fold in (None, "") else parse_int(fold, path_file, line, "fold")
    try:
        split = normalize_split(entry.get("split"), where=f"{path_file}:{line}")
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    kwargs: dict[str, Any] = {}
    for key, names in (("duration", ("duration", "duration_s")), ("start", ("start",)), ("end", ("end",))):
        name = next((n for n in names if entry.get(n) not in (None, "")), None)
        if name is not None:
            kwargs[key] = parse_float(str(entry[name]), path_file, line, name)
    events = []
    for ev in entry.get("events") or ():
        if not isinstance(ev, dict) or not {"onset", "offset", "label"} <= ev.keys():
            raise metadata_error(path_file, line, f"each event needs onset, offset and label, got {ev!r}")
        try:
            events.append(Event(float(ev["onset"]), float(ev["offset"]), str(ev["label"])))
        except (TypeError, ValueError) as exc:
            raise metadata_error(path_file, line, f"bad event {ev!r}: {exc}") from None
    if events:
        labels = tuple(dict.fromkeys(labels + tuple(e.label for e in events)))
    ident = entry.get("id")
    try:
        return ClipRecord(
            path=path,
            labels=labels,
            events=tuple(events),
            fold=fold,
            split=split,
            id=str(ident)
            if ident not in (None, "")
            else Path(raw.strip()).with_suffix("").as_posix(),
            **kwargs,
        )
    except ValueError as exc:
        raise metadata_error(path_file, line, str(exc)) from None


def _manifest_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        with open_text(path) as fh:
            for i, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    entry = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise metadata_error(path, i, f"not valid JSON ({exc.msg})") from None
                if not isinstance(entry, dict):
                    raise metadata_error(
                        path,
                        i,
                        'each line must be a JSON object like {"path": ..., "labels": [...]}',
                    )
                yield i, entry
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = [h.strip().lower() for h in next(reader, [])]
        if not header:
            raise metadata_error(path, 1, "empty manifest (expected a header like path,labels[,split|fold])")
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise metadata_error(
                    path,
                    reader.line_num,
                    f"expected {len(header)} fields ({','.join(header)}), got {len(row)}"
                    + (
                        "; quote multi-label fields or separate labels with ';'"
                        if len(row) > len(header)
                        else ""
                    ),
                )
            yield reader.line_num, dict(zip(header, row))


def read_manifest(
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    check_files: bool = True,
    audio_dir: str | Path | None = None,
) -> ReadResult:
    """A CSV/TSV manifest with a header, or a JSONL manifest (one JSON object per line).

    Columns/keys: ``path`` (or filename/file/audio), ``labels`` (or label/category/class),
    optional ``split`` (train/valid/test and aliases), ``fold``, ``id``, ``duration``, ``start``,
    ``end``; JSONL may also give ``events`` ``[{"onset", "offset", "label"}]``. Multi-labels: a
    list (JSONL) or one field separated by ``;`` or by ``,`` (quoted in CSV). Relative paths are
    resolved against ``audio_dir`` when given, else the manifest's folder, then its ``audio/``
    sub-folder (``duration_s`` is read as ``duration``). ``labels`` fixes the vocabulary and its
    order (default: sorted labels found). ``check_files=False`` skips the existence check.
    """
    path = Path(path)
    base = Path(audio_dir) if audio_dir is not None else path.parent
    locator = AudioLocator([base] if audio_dir is not None else [base, base / "audio"])
    records: list[ClipRecord] = []
    path_key = label_key = None
    for line, entry in _manifest_rows(path):
        if path_key is None:
            keys = [k.lower() for k in entry]
            path_key = _pick(keys, _PATH_COLUMNS)
            label_key = _pick(keys, _LABEL_COLUMNS)
            if path_key is None:
                raise metadata_error(
                    path,
                    1 if path.suffix.lower() != ".jsonl" else line,
                    f"no path column; expected one of {_PATH_COLUMNS}",
                )
        entry = {k.lower(): v for k, v in entry.items()}
        if path_key not in entry:
            raise metadata_error(path, line, f"missing {path_key!r}")
        records.append(_manifest_record(entry, base, path, line, path_key, label_key))
    if labels is not None:
        label_set = LabelSet(labels)
        for r in records:
            for n in r.labels:
                if n not in label_set:
                    raise metadata_error(path, None, f"label {n!r} (clip {r.id}) is not in the given labels")
    else:
        label_set = LabelSet.from_records(records)
    result = ReadResult([], label_set, kind="manifest", source=path)
    missing = []
    for r in records:
        if check_files:
            found = locator.find(str(r.path))
            if found is None:
                rel = r.path.relative_to(base) if r.path.is_relative_to(base) else None
                found = locator.find(rel.as_posix()) if rel is not None else None
            if found is None:
                missing.append(str(r.path))
                continue
            if found != r.path:
                r = dataclasses.replace(r, path=found)
        result.records.append(r)
    report_missing(result, missing, len(records), f"entries of {path.name}", locator.where(), hint=AUDIO_DIR_HINT)
    return result

"""ESC-50 and its variants: ``audio/*.wav`` + a clip table with ``filename``, ``fold`` and a label.

The official layout is ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``).
Variants users make are read too: the table at the root or in ``meta/`` under any name, the label
in ``category``, ``label`` or ``target``, a ``duration``/``duration_s`` column, a ``split`` column.
"""

from __future__ import annotations

import csv
from pathlib import Path

from audioflex.data.readers.common import (
    AUDIO_DIR_HINT,
    AudioLocator,
    DatasetError,
    header_of,
    metadata_error,
    open_text,
    parse_float,
    parse_int,
    report_missing,
)
from audioflex.data.records import ClipRecord, LabelSet, ReadResult, normalize_split

FILE_COLUMNS = ("filename", "file", "path", "audio")
LABEL_COLUMNS = ("category", "label", "class", "target")
DURATION_COLUMNS = ("duration", "duration_s", "seconds", "length")


def is_clip_table(path: Path) -> bool:
    """Whether a CSV's header names a file column, ``fold`` and a label column (ESC-50 style)."""
    cols = header_of(path)
    return (
        path.suffix.lower() == ".csv" and "fold" in cols and any(c in cols for c in FILE_COLUMNS)
        and any(c in cols for c in LABEL_COLUMNS)
    )


def find_esc50_table(root: Path) -> Path | None:
    """``meta/esc50.csv``, else the one ESC-50-style CSV at ``root`` or in ``root/meta``."""
    if (root / "meta" / "esc50.csv").is_file():
        return root / "meta" / "esc50.csv"
    found = [p for where in (root, root / "meta") if where.is_dir() for p in sorted(where.glob("*.csv"))
             if is_clip_table(p)]
    return found[0] if len(found) == 1 else None


def _root_of(meta: Path) -> Path:
    return meta.parent.parent if meta.parent.name == "meta" else meta.parent


def read_esc50(
    root: str | Path,
    *,
    esc10: bool = False,
    meta: str | Path | None = None,
    audio_dir: str | Path | None = None,
) -> ReadResult:
    """ESC-50 (``root/audio/*.wav`` + ``root/meta/esc50.csv``) or an ESC-50-style clip table.

    Args:
        root: the dataset folder, or the table itself.
        esc10: only the ESC-10 subset (needs the ``esc10`` column).
        meta: the table (default: ``meta/esc50.csv``, else the one CSV at the root or in ``meta/``
            with ``filename``, ``fold`` and a label column).
        audio_dir: where the files are (default: ``root/audio``, then the table's folder, then root).

    Labels come from ``category`` (else ``label``/``class``, else ``target`` as names), ordered by
    ``target`` when there is one, else sorted. ``duration``/``duration_s`` and ``split`` columns
    are kept; ``fold`` is an integer.
    """
    root = Path(root)
    if root.is_file():
        meta, root = root, _root_of(root)
    table = Path(meta) if meta is not None else find_esc50_table(root)
    if table is None:
        raise DatasetError(
            f"{root}: no ESC-50 table (meta/esc50.csv, or one CSV with filename,fold,label columns at the "
            "root or in meta/); pass the CSV itself"
        )
    bases = [Path(audio_dir)] if audio_dir is not None else [root / "audio", table.parent, root]
    locator = AudioLocator(bases)
    rows = []
    with open_text(table) as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        col = {c: i for i, c in enumerate(header)}
        fcol = next((c for c in FILE_COLUMNS if c in col), None)
        lcol = next((c for c in LABEL_COLUMNS if c in col), None)
        if fcol is None or lcol is None or "fold" not in col:
            raise metadata_error(
                table, 1, f"expected a header with filename, fold and category (or label/target) columns, "
                f"got {','.join(header)!r}",
            )
        if esc10 and "esc10" not in col:
            raise metadata_error(table, 1, "esc10=True needs an esc10 column")
        dcol = next((c for c in DURATION_COLUMNS if c in col), None)
        for row in reader:
            line = reader.line_num
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise metadata_error(table, line, f"expected {len(header)} fields ({','.join(header)}), got {len(row)}")
            if esc10 and row[col["esc10"]].strip().lower() != "true":
                continue
            target = parse_int(row[col["target"]], table, line, "target") if "target" in col else None
            try:
                split = normalize_split(row[col["split"]], where=f"{table}:{line}") if "split" in col else None
            except ValueError as exc:
                raise DatasetError(str(exc)) from None
            rows.append((
                line, row[col[fcol]].strip(), parse_int(row[col["fold"]], table, line, "fold"), target,
                row[col[lcol]].strip(), split,
                parse_float(row[col[dcol]], table, line, dcol) if dcol and row[col[dcol]].strip() else None,
            ))
    by_target: dict[int, str] = {}
    for line, _, _, target, name, _, _ in rows:
        if target is not None and by_target.setdefault(target, name) != name:
            raise metadata_error(table, line, f"target {target} is {name!r} here but {by_target[target]!r} earlier")
    names = [by_target[t] for t in sorted(by_target)] if by_target else sorted({r[4] for r in rows})
    result = ReadResult([], LabelSet(names), kind="esc50", source=root)
    missing = []
    for _, filename, fold, _, name, split, duration in rows:
        path = locator.find(filename)
        if path is None:
            missing.append(filename)
            continue
        result.records.append(ClipRecord(path=path, labels=(name,), fold=fold, split=split, duration=duration,
                                         id=Path(filename).stem))
    report_missing(result, missing, len(rows), f"rows of {table.name}", locator.where(), hint=AUDIO_DIR_HINT)
    return result

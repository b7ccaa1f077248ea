"""ESC-50 as distributed: ``audio/*.wav`` + ``meta/esc50.csv`` (5 folds, 50 or ESC-10 classes)."""

from __future__ import annotations

import csv
from pathlib import Path

from audioflex.data.readers.common import list_files, metadata_error, open_text, parse_int, report_missing
from audioflex.data.records import ClipRecord, LabelSet, ReadResult


def read_esc50(root: str | Path, *, esc10: bool = False) -> ReadResult:
    """ESC-50: ``root/audio/*.wav`` + ``root/meta/esc50.csv``.

    Header ``filename,fold,target,category,esc10,src_file,take``; labels are the categories ordered
    by ``target`` (50 classes; ``esc10=True``: only the ESC-10 subset, 10 classes); ``fold`` 1..5.
    """
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    audio_dir = root / "audio"
    rows: list[tuple[int, str, int, int, str, bool]] = []
    with open_text(meta) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        need = ("filename", "fold", "target", "category")
        if any(c not in header for c in need):
            raise metadata_error(
                meta,
                1,
                f"expected a header with columns {','.join(need)},esc10,..., "
                f"got {','.join(header)!r}",
            )
        col = {c: header.index(c) for c in header}
        for row in reader:
            line = reader.line_num
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise metadata_error(
                    meta,
                    line,
                    f"expected {len(header)} fields ({','.join(header)}), got {len(row)}",
                )
            is10 = row[col["esc10"]].strip().lower() == "true" if "esc10" in col else False
            rows.append(
                (
                    line,
                    row[col["filename"]].strip(),
                    parse_int(row[col["fold"]], meta, line, "fold"),
                    parse_int(row[col["target"]], meta, line, "target"),
                    row[col["category"]].strip(),
                    is10,
                )
            )
    if esc10:
        rows = [r for r in rows if r[5]]
    by_target: dict[int, str] = {}
    for line, _, _, target, category, _ in rows:
        if by_target.setdefault(target, category) != category:
            raise metadata_error(
                meta,
                line,
                f"target {target} is {category!r} here but {by_target[target]!r} earlier",
            )
    labels = LabelSet(by_target[t] for t in sorted(by_target))
    result = ReadResult([], labels, kind="esc50", source=root)
    present = list_files(audio_dir)
    missing = []
    for _, filename, fold, _, category, _ in rows:
        if filename not in present:
            missing.append(filename)
            continue
        result.records.append(
            ClipRecord(
                path=audio_dir / filename, labels=(category,), fold=fold, id=Path(filename).stem
            )
        )
    report_missing(result, missing, len(rows), "rows of meta/esc50.csv", audio_dir)
    return result

"""DESED-style strong labels: a TSV of ``filename, onset, offset, event_label`` rows (or weak ``event_labels``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from audioflex.data.readers.common import (
    AUDIO_DIR_HINT,
    AudioLocator,
    metadata_error,
    open_text,
    parse_float,
    report_missing,
)
from audioflex.data.records import ClipRecord, Event, LabelSet, ReadResult, normalize_split


def audio_dirs_for(tsv: Path) -> tuple[list[Path], bool]:
    """Where a strong/weak TSV's files are by default -> (folders, search them recursively).

    The TSV's folder and its ``audio/``; in the DESED release layout
    (``metadata/<split>/<name>.tsv``) also ``audio/<split>/<name>/`` and ``audio/<split>/``
    (searched recursively).
    """
    tsv = Path(tsv)
    bases = [tsv.parent, tsv.parent / "audio"]
    for up in tsv.parents:
        if up.name == "metadata":
            rel = tsv.relative_to(up).with_suffix("")
            audio = up.parent / "audio"
            return bases + [audio / rel, audio / rel.parent, audio / rel.parts[0]], True
    return bases, False


def read_strong_labels(
    tsv: str | Path,
    *,
    audio_dir: str | Path | Sequence[str | Path] | None = None,
    split: str | None = None,
    labels: Sequence[str] | None = None,
) -> ReadResult:
    """DESED-style strong labels: TSV ``filename<TAB>onset<TAB>offset<TAB>event_label`` (seconds).

    One row per event, grouped per file (first-appearance order). A row with empty onset/offset is
    a weak label (clip label, no event); a row with no label at all is a clip without events. The
    weak-label TSV ``filename<TAB>event_labels`` (comma-separated) is read too. The header line is
    optional. ``audio_dir`` (one folder or several, tried in order) defaults to
    :func:`audio_dirs_for` (the TSV's folder, its ``audio/``, and in the DESED release layout the
    matching ``audio/<split>/`` folder); ``labels`` fixes the vocabulary order (default: sorted
    labels found).
    """
    tsv = Path(tsv)
    if audio_dir is None:
        bases, recursive = audio_dirs_for(tsv)
    else:
        bases = [Path(audio_dir)] if isinstance(audio_dir, (str, Path)) else [Path(a) for a in audio_dir]
        recursive = False
    locator = AudioLocator(bases, index=recursive)
    split = normalize_split(split, where="read_strong_labels(split=...)")
    clips: dict[str, tuple[list[str], list[Event]]] = {}
    with open_text(tsv) as fh:
        reader = csv.reader(fh, delimiter="\t")
        weak_format = False
        for row in reader:
            line = reader.line_num
            if not row or not any(f.strip() for f in row):
                continue
            row = [f.strip() for f in row]
            if line == 1 and row[0].lower() in ("filename", "file", "path"):
                weak_format = len(row) == 2 or (len(row) > 1 and row[1].lower() == "event_labels")
                continue
            if weak_format or len(row) == 2:
                if len(row) > 2:
                    raise metadata_error(
                        tsv,
                        line,
                        f"expected 2 tab-separated fields filename, event_labels; got {len(row)}",
                    )
                names, events = clips.setdefault(row[0], ([], []))
                for lab in row[1].split(",") if len(row) > 1 else []:
                    if lab.strip() and lab.strip() not in names:
                        names.append(lab.strip())
                continue
            if len(row) not in (1, 3, 4):
                raise metadata_error(
                    tsv,
                    line,
                    "expected 4 tab-separated fields filename, onset, offset, event_label; "
                    f"got {len(row)}",
                )
            row = row + [""] * (4 - len(row))
            filename, onset_s, offset_s, label = row
            names, events = clips.setdefault(filename, ([], []))
            if not label:
                if onset_s or offset_s:
                    raise metadata_error(tsv, line, "an event with onset/offset needs an event_label")
                continue
            if label not in names:
                names.append(label)
            if not onset_s and not offset_s:
                continue  # weak label
            if not onset_s or not offset_s:
                raise metadata_error(tsv, line, "give both onset and offset, or neither (weak label)")
            onset = parse_float(onset_s, tsv, line, "onset")
            offset = parse_float(offset_s, tsv, line, "offset")
            if onset < 0 or offset < onset:
                raise metadata_error(
                    tsv, line, f"need 0 <= onset <= offset, got onset={onset}, offset={offset}"
                )
            events.append(Event(onset, offset, label))
    if labels is not None:
        label_set = LabelSet(labels)
        for filename, (names, _) in clips.items():
            for n in names:
                if n not in label_set:
                    raise metadata_error(
                        tsv, None, f"label {n!r} (file {filename}) is not in the given labels"
                    )
    else:
        label_set = LabelSet(sorted({n for names, _ in clips.values() for n in names}))
    result = ReadResult([], label_set, kind="strong", source=tsv)
    missing = []
    for filename, (names, events) in clips.items():
        path = locator.find(filename)
        if path is None:
            missing.append(filename)
            continue
        result.records.append(
            ClipRecord(
                path=path,
                labels=tuple(sorted(names)),
                events=tuple(events),
                split=split,
                id=Path(filename).stem,
            )
        )
    report_missing(result, missing, len(clips), f"files of {tsv.name}", locator.where(), hint=AUDIO_DIR_HINT)
    return result

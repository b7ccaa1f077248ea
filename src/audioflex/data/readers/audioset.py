"""AudioSet: segment CSVs + ``class_labels_indices.csv`` + the user's own audio download (matched by YTID)."""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from audioflex.data.readers.common import (
    AUDIO_EXTENSIONS,
    DatasetError,
    is_audio,
    metadata_error,
    open_text,
    parse_float,
    parse_int,
    report_missing,
)
from audioflex.data.records import ClipRecord, LabelSet, ReadResult

logger = logging.getLogger(__name__)

AUDIOSET_SEGMENT_FILES = (
    "balanced_train_segments.csv",
    "eval_segments.csv",
    "unbalanced_train_segments.csv",
)

_SEGMENT_SUFFIX = re.compile(r"^(.+?)_(-?\d+(?:\.\d+)?)(?:_(-?\d+(?:\.\d+)?))?$")


def _ytid_keys(stem: str) -> list[str]:
    """Candidate YTIDs for an audio file stem, best first (``ID``, ``ID_30_40``, ``YID``, ...)."""
    keys = [stem]
    m = _SEGMENT_SUFFIX.match(stem)
    if m:
        keys.append(m.group(1))
    for k in list(keys):
        if len(k) == 12 and k.startswith(
            "Y"
        ):  # YTIDs are 11 characters; "Y<YTID>" (PANNs downloads)
            keys.append(k[1:])
    return keys


def index_audio_dir(
    audio_dir: Path, extensions: Sequence[str] = AUDIO_EXTENSIONS
) -> dict[str, Path]:
    """Walk ``audio_dir`` once (recursively) and map every plausible YTID to its audio file."""
    best: dict[str, tuple[int, Path]] = {}
    for dirpath, dirnames, filenames in os.walk(audio_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not is_audio(name, extensions):
                continue
            stem = os.path.splitext(name)[0]
            for rank, key in enumerate(_ytid_keys(stem)):
                if key not in best or rank < best[key][0]:
                    best[key] = (rank, Path(dirpath) / name)
    return {k: v[1] for k, v in best.items()}


def read_audioset_labels(path: str | Path) -> LabelSet:
    """``class_labels_indices.csv`` (``index,mid,display_name``) -> display names, ids = MIDs."""
    path = Path(path)
    entries: list[tuple[int, str, str]] = []
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if header[:3] != ["index", "mid", "display_name"]:
            raise metadata_error(path, 1, f"expected header index,mid,display_name, got {','.join(header)!r}")
        for row in reader:
            if not row:
                continue
            if len(row) != 3:
                raise metadata_error(
                    path,
                    reader.line_num,
                    "expected 3 fields (index,mid,display_name; quote names with commas), "
                    f"got {len(row)}",
                )
            entries.append(
                (parse_int(row[0], path, reader.line_num, "index"), row[1].strip(), row[2].strip())
            )
    entries.sort()
    if [e[0] for e in entries] != list(range(len(entries))):
        raise metadata_error(path, None, "indices must be 0..N-1, each once")
    names = [e[2] for e in entries]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:  # keep names unique: "Name (mid)" for the repeated ones
        logger.warning("%s: display names %s repeat; they become 'name (mid)'", path, dupes)
        names = [f"{e[2]} ({e[1]})" if counts[e[2]] > 1 else e[2] for e in entries]
    try:
        return LabelSet(names, ids=[e[1] for e in entries])
    except ValueError as exc:
        raise metadata_error(path, None, str(exc)) from None


def _segment_split(name: str) -> str | None:
    low = name.lower()
    if "eval" in low or "test" in low:
        return "test"
    if "train" in low:
        return "train"
    if "valid" in low:
        return "valid"
    return None


def read_audioset_segments(
    csv_path: str | Path,
    labels: LabelSet,
    audio_index: dict[str, Path],
    *,
    split: str | None = None,
    full_videos: bool = False,
) -> tuple[list[ClipRecord], list[str]]:
    """One AudioSet segment CSV -> (records with audio, YTIDs without audio).

    Lines starting with ``#`` are comments; rows are ``YTID, start, end, "mid1,mid2"``.
    """
    csv_path = Path(csv_path)
    records: list[ClipRecord] = []
    missing: list[str] = []
    with open_text(csv_path) as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        for row in reader:
            line = reader.line_num
            if not row or row[0].lstrip().startswith("#") or not any(f.strip() for f in row):
                continue
            if len(row) != 4:
                raise metadata_error(
                    csv_path,
                    line,
                    'expected 4 fields YTID, start_seconds, end_seconds, "mid1,mid2" '
                    f"(labels quoted), got {len(row)}",
                )
            ytid = row[0].strip()
            start = parse_float(row[1], csv_path, line, "start_seconds")
            end = parse_float(row[2], csv_path, line, "end_seconds")
            if end <= start:
                raise metadata_error(csv_path, line, f"end_seconds ({end}) must be > start_seconds ({start})")
            mids = [m.strip() for m in row[3].split(",") if m.strip()]
            names = []
            for mid in mids:
                if mid not in labels:
                    raise metadata_error(csv_path, line, f"label {mid!r} is not in class_labels_indices.csv")
                names.append(labels[labels.index(mid)])
            audio = audio_index.get(ytid)
            if audio is None:
                missing.append(ytid)
                continue
            if full_videos:
                rec = ClipRecord(
                    path=audio, labels=tuple(names), split=split, start=start, end=end, id=ytid
                )
            else:
                rec = ClipRecord(
                    path=audio, labels=tuple(names), split=split, duration=end - start, id=ytid
                )
            records.append(rec)
    return records, missing


def read_audioset(
    root: str | Path,
    *,
    segments: str | Path | Sequence[str | Path] | None = None,
    audio_dir: str | Path | None = None,
    labels_csv: str | Path | None = None,
    full_videos: bool = False,
) -> ReadResult:
    """AudioSet: segment CSVs + ``class_labels_indices.csv`` + your own audio download.

    Args:
        root: directory holding ``class_labels_indices.csv`` and the segment CSVs.
        segments: CSV file(s) to read (names relative to ``root``); default the
            ``balanced_train_segments.csv`` and ``eval_segments.csv`` present; ``"all"`` adds
            ``unbalanced_train_segments.csv``. Split: ``*train*`` -> train, ``eval`` -> test.
        audio_dir: where the audio is (searched recursively, indexed once); default
            ``root/audio`` if it exists, else ``root``. Files are matched by YTID: ``<YTID>.<ext>``,
            ``<YTID>_<start>_<end>.<ext>`` or ``Y<YTID>.<ext>``, any audio extension.
        labels_csv: default ``root/class_labels_indices.csv``.
        full_videos: the files are whole videos: records get ``start``/``end`` of the segment.
            Default: each file already is the segment (``duration = end - start``, nominal).

    Label names are display names; the MIDs are ``result.labels.ids``. Segments without audio are
    counted in ``result.missing`` (YTIDs) and logged, not fatal.
    """
    root = Path(root)
    if root.is_file():  # a segment CSV given as the root
        segments = [root.resolve()] if segments is None else segments
        root = root.parent
    labels = read_audioset_labels(
        Path(labels_csv) if labels_csv else root / "class_labels_indices.csv"
    )
    if segments is None or segments == "all":
        names = AUDIOSET_SEGMENT_FILES if segments == "all" else AUDIOSET_SEGMENT_FILES[:2]
        csvs = [root / n for n in names if (root / n).is_file()]
        if segments is None and (root / AUDIOSET_SEGMENT_FILES[2]).is_file():
            logger.info(
                "%s: not reading unbalanced_train_segments.csv (pass segments='all' to)", root
            )
        if not csvs:
            raise DatasetError(f"{root}: no segment CSV found (expected {' or '.join(names)})")
    else:
        seq = [segments] if isinstance(segments, (str, Path)) else list(segments)
        csvs = [p if p.is_absolute() else root / p for p in map(Path, seq)]
    if audio_dir is None:
        audio_dir = root / "audio" if (root / "audio").is_dir() else root
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise DatasetError(f"{audio_dir}: audio directory does not exist (pass audio_dir=...)")
    index = index_audio_dir(audio_dir)
    result = ReadResult([], labels, kind="audioset", source=root)
    for path in csvs:
        recs, missing = read_audioset_segments(
            path, labels, index, split=_segment_split(path.name), full_videos=full_videos
        )
        result.records.extend(recs)
        report_missing(
            result, missing, len(recs) + len(missing), f"segments of {path.name}", audio_dir
        )
    return result

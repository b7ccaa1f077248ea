"""Readers for the standard dataset layouts, as distributed, into ``ClipRecord`` lists.

Every reader returns a :class:`~audioflex.data.records.ReadResult` (records, label vocabulary,
missing files, warnings). Files named by the metadata but absent on disk are reported, not fatal;
malformed metadata raises :class:`DatasetError` naming the file and line. Audio is never opened
(durations: :func:`~audioflex.data.records.with_durations`).

Layouts: ESC-50, Speech Commands V2, AudioSet segment CSVs, DESED strong-label TSVs, generic
CSV/TSV/JSONL manifests and folder-per-class trees. :func:`read_dataset` detects which one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from audioflex.data.records import SPLITS, ClipRecord, Event, LabelSet, ReadResult, normalize_split

logger = logging.getLogger(__name__)

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
AUDIOSET_SEGMENT_FILES = (
    "balanced_train_segments.csv",
    "eval_segments.csv",
    "unbalanced_train_segments.csv",
)
MANIFEST_NAMES = ("manifest.csv", "manifest.tsv", "manifest.jsonl")

_MAX_LISTED = 5


class DatasetError(ValueError):
    """Malformed dataset metadata or an unusable layout; the message names the file (and line)."""


def _err(path: Path | str, line: int | None, problem: str) -> DatasetError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DatasetError(f"{where}: {problem}")


def _is_audio(name: str, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions


def _list_files(directory: Path) -> set[str]:
    """Names of the files directly inside ``directory`` (empty set if it does not exist)."""
    try:
        with os.scandir(directory) as it:
            return {e.name for e in it if not e.is_dir()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _report_missing(
    result: ReadResult, missing: list[str], total: int, what: str, where: Path
) -> None:
    if not missing:
        return
    result.missing.extend(missing)
    shown = ", ".join(missing[:_MAX_LISTED]) + (", ..." if len(missing) > _MAX_LISTED else "")
    result.warn(
        f"{len(missing)} of {total} {what} have no audio file in {where} (left out): {shown}"
    )


def _float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _err(path, line, f"{column} must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _err(path, line, f"{column} must be finite, got {text!r}")
    return value


def _int(text: str, path: Path, line: int, column: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise _err(path, line, f"{column} must be an integer, got {text!r}") from None


def _open_text(path: Path) -> Any:
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, expected a metadata file") from None


# ----------------------------------------------------------------------------------- ESC-50


def read_esc50(root: str | Path, *, esc10: bool = False) -> ReadResult:
    """ESC-50: ``root/audio/*.wav`` + ``root/meta/esc50.csv``.

    Header ``filename,fold,target,category,esc10,src_file,take``; labels are the categories ordered
    by ``target`` (50 classes; ``esc10=True``: only the ESC-10 subset, 10 classes); ``fold`` 1..5.
    """
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    audio_dir = root / "audio"
    rows: list[tuple[int, str, int, int, str, bool]] = []
    with _open_text(meta) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        need = ("filename", "fold", "target", "category")
        if any(c not in header for c in need):
            raise _err(
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
                raise _err(
                    meta,
                    line,
                    f"expected {len(header)} fields ({','.join(header)}), got {len(row)}",
                )
            is10 = row[col["esc10"]].strip().lower() == "true" if "esc10" in col else False
            rows.append(
                (
                    line,
                    row[col["filename"]].strip(),
                    _int(row[col["fold"]], meta, line, "fold"),
                    _int(row[col["target"]], meta, line, "target"),
                    row[col["category"]].strip(),
                    is10,
                )
            )
    if esc10:
        rows = [r for r in rows if r[5]]
    by_target: dict[int, str] = {}
    for line, _, _, target, category, _ in rows:
        if by_target.setdefault(target, category) != category:
            raise _err(
                meta,
                line,
                f"target {target} is {category!r} here but {by_target[target]!r} earlier",
            )
    labels = LabelSet(by_target[t] for t in sorted(by_target))
    result = ReadResult([], labels, kind="esc50", source=root)
    present = _list_files(audio_dir)
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
    _report_missing(result, missing, len(rows), "rows of meta/esc50.csv", audio_dir)
    return result


# ------------------------------------------------------------------------------- Speech Commands


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with open(path, encoding="utf-8") as fh:
        return {ln.strip().replace("\\", "/") for ln in fh if ln.strip()}


def read_speech_commands(root: str | Path, *, classes: Sequence[str] | None = None) -> ReadResult:
    """Speech Commands (V1/V2): ``root/<word>/<speaker>_nohash_<n>.wav``.

    Words are the sub-directories (``_background_noise_`` and other ``_``/``.`` folders excluded),
    sorted; ``classes`` restricts to some words. Split from ``validation_list.txt`` and
    ``testing_list.txt`` (paths relative to ``root``); every other clip is ``train``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected the Speech Commands root)")
    valid = _read_list(root / "validation_list.txt")
    test = _read_list(root / "testing_list.txt")
    if not (root / "validation_list.txt").is_file() and not (root / "testing_list.txt").is_file():
        logger.warning("%s: no validation_list.txt/testing_list.txt; every clip is 'train'", root)
    words = sorted(
        e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(("_", "."))
    )
    if classes is not None:
        unknown = sorted(set(classes) - set(words))
        if unknown:
            raise DatasetError(f"{root}: no word folder for classes {unknown}; found {words}")
        words = sorted(classes)
    if not words:
        raise DatasetError(
            f"{root}: no word folders found (expected <word>/<speaker>_nohash_<n>.wav)"
        )
    result = ReadResult([], LabelSet(words), kind="speechcommands", source=root)
    found: set[str] = set()
    for word in words:
        for name in sorted(_list_files(root / word)):
            if not _is_audio(name, (".wav",)):
                continue
            rel = f"{word}/{name}"
            found.add(rel)
            split = "test" if rel in test else "valid" if rel in valid else "train"
            result.records.append(
                ClipRecord(path=root / word / name, labels=(word,), split=split, id=rel[:-4])
            )
    listed = {p for p in valid | test if p.split("/", 1)[0] in words}
    missing = sorted(listed - found)
    _report_missing(
        result, missing, len(listed), "clips of validation_list.txt/testing_list.txt", root
    )
    return result


# -------------------------------------------------------------------------------------- AudioSet

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
            if not _is_audio(name, extensions):
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
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if header[:3] != ["index", "mid", "display_name"]:
            raise _err(path, 1, f"expected header index,mid,display_name, got {','.join(header)!r}")
        for row in reader:
            if not row:
                continue
            if len(row) != 3:
                raise _err(
                    path,
                    reader.line_num,
                    "expected 3 fields (index,mid,display_name; quote names with commas), "
                    f"got {len(row)}",
                )
            entries.append(
                (_int(row[0], path, reader.line_num, "index"), row[1].strip(), row[2].strip())
            )
    entries.sort()
    if [e[0] for e in entries] != list(range(len(entries))):
        raise _err(path, None, "indices must be 0..N-1, each once")
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
        raise _err(path, None, str(exc)) from None


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
    with _open_text(csv_path) as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        for row in reader:
            line = reader.line_num
            if not row or row[0].lstrip().startswith("#") or not any(f.strip() for f in row):
                continue
            if len(row) != 4:
                raise _err(
                    csv_path,
                    line,
                    'expected 4 fields YTID, start_seconds, end_seconds, "mid1,mid2" '
                    f"(labels quoted), got {len(row)}",
                )
            ytid = row[0].strip()
            start = _float(row[1], csv_path, line, "start_seconds")
            end = _float(row[2], csv_path, line, "end_seconds")
            if end <= start:
                raise _err(csv_path, line, f"end_seconds ({end}) must be > start_seconds ({start})")
            mids = [m.strip() for m in row[3].split(",") if m.strip()]
            names = []
            for mid in mids:
                if mid not in labels:
                    raise _err(csv_path, line, f"label {mid!r} is not in class_labels_indices.csv")
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
        _report_missing(
            result, missing, len(recs) + len(missing), f"segments of {path.name}", audio_dir
        )
    return result


# -------------------------------------------------------------------------------- strong labels


def read_strong_labels(
    tsv: str | Path,
    *,
    audio_dir: str | Path | None = None,
    split: str | None = None,
    labels: Sequence[str] | None = None,
) -> ReadResult:
    """DESED-style strong labels: TSV ``filename<TAB>onset<TAB>offset<TAB>event_label`` (seconds).

    One row per event, grouped per file (first-appearance order). A row with empty onset/offset is
    a weak label (clip label, no event); a row with no label at all is a clip without events. The
    weak-label TSV ``filename<TAB>event_labels`` (comma-separated) is read too. The header line is
    optional. ``audio_dir`` defaults to the TSV's folder; ``labels`` fixes the vocabulary order
    (default: sorted labels found).
    """
    tsv = Path(tsv)
    base = Path(audio_dir) if audio_dir is not None else tsv.parent
    split = normalize_split(split, where="read_strong_labels(split=...)")
    clips: dict[str, tuple[list[str], list[Event]]] = {}
    with _open_text(tsv) as fh:
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
                    raise _err(
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
                raise _err(
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
                    raise _err(tsv, line, "an event with onset/offset needs an event_label")
                continue
            if label not in names:
                names.append(label)
            if not onset_s and not offset_s:
                continue  # weak label
            if not onset_s or not offset_s:
                raise _err(tsv, line, "give both onset and offset, or neither (weak label)")
            onset = _float(onset_s, tsv, line, "onset")
            offset = _float(offset_s, tsv, line, "offset")
            if onset < 0 or offset < onset:
                raise _err(
                    tsv, line, f"need 0 <= onset <= offset, got onset={onset}, offset={offset}"
                )
            events.append(Event(onset, offset, label))
    if labels is not None:
        label_set = LabelSet(labels)
        for filename, (names, _) in clips.items():
            for n in names:
                if n not in label_set:
                    raise _err(
                        tsv, None, f"label {n!r} (file {filename}) is not in the given labels"
                    )
    else:
        label_set = LabelSet(sorted({n for names, _ in clips.values() for n in names}))
    result = ReadResult([], label_set, kind="strong", source=tsv)
    present = _list_files(base)
    missing = []
    for filename, (names, events) in clips.items():
        path = base / filename
        if filename not in present and not path.is_file():
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
    _report_missing(result, missing, len(clips), f"files of {tsv.name}", base)
    return result


# ------------------------------------------------------------------------------------ manifests

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
        raise _err(path_file, line, f"empty or missing {path_key!r}")
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
        raise _err(
            path_file,
            line,
            f"{label_key!r} must be a string or a list of strings, got {labels_raw!r}",
        )
    fold = entry.get("fold")
    fold = None if fold in (None, "") else _int(fold, path_file, line, "fold")
    try:
        split = normalize_split(entry.get("split"), where=f"{path_file}:{line}")
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    kwargs: dict[str, Any] = {}
    for key in ("duration", "start", "end"):
        value = entry.get(key)
        if value not in (None, ""):
            kwargs[key] = _float(str(value), path_file, line, key)
    events = []
    for ev in entry.get("events") or ():
        if not isinstance(ev, dict) or not {"onset", "offset", "label"} <= ev.keys():
            raise _err(path_file, line, f"each event needs onset, offset and label, got {ev!r}")
        try:
            events.append(Event(float(ev["onset"]), float(ev["offset"]), str(ev["label"])))
        except (TypeError, ValueError) as exc:
            raise _err(path_file, line, f"bad event {ev!r}: {exc}") from None
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
        raise _err(path_file, line, str(exc)) from None


def _manifest_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        with _open_text(path) as fh:
            for i, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    entry = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise _err(path, i, f"not valid JSON ({exc.msg})") from None
                if not isinstance(entry, dict):
                    raise _err(
                        path,
                        i,
                        'each line must be a JSON object like {"path": ..., "labels": [...]}',
                    )
                yield i, entry
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = [h.strip().lower() for h in next(reader, [])]
        if not header:
            raise _err(path, 1, "empty manifest (expected a header like path,labels[,split|fold])")
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise _err(
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
    path: str | Path, *, labels: Sequence[str] | None = None, check_files: bool = True
) -> ReadResult:
    """A CSV/TSV manifest with a header, or a JSONL manifest (one JSON object per line).

    Columns/keys: ``path`` (or filename/file/audio), ``labels`` (or label/category/class),
    optional ``split`` (train/valid/test and aliases), ``fold``, ``id``, ``duration``, ``start``,
    ``end``; JSONL may also give ``events`` ``[{"onset", "offset", "label"}]``. Multi-labels: a
    list (JSONL) or one field separated by ``;`` or by ``,`` (quoted in CSV). Relative paths are
    resolved against the manifest's folder. ``labels`` fixes the vocabulary and its order
    (default: sorted labels found). ``check_files=False`` skips the existence check.
    """
    path = Path(path)
    base = path.parent
    records: list[ClipRecord] = []
    path_key = label_key = None
    for line, entry in _manifest_rows(path):
        if path_key is None:
            keys = [k.lower() for k in entry]
            path_key = _pick(keys, _PATH_COLUMNS)
            label_key = _pick(keys, _LABEL_COLUMNS)
            if path_key is None:
                raise _err(
                    path,
                    1 if path.suffix.lower() != ".jsonl" else line,
                    f"no path column; expected one of {_PATH_COLUMNS}",
                )
        entry = {k.lower(): v for k, v in entry.items()}
        if path_key not in entry:
            raise _err(path, line, f"missing {path_key!r}")
        records.append(_manifest_record(entry, base, path, line, path_key, label_key))
    if labels is not None:
        label_set = LabelSet(labels)
        for r in records:
            for n in r.labels:
                if n not in label_set:
                    raise _err(path, None, f"label {n!r} (clip {r.id}) is not in the given labels")
    else:
        label_set = LabelSet.from_records(records)
    result = ReadResult([], label_set, kind="manifest", source=path)
    missing = []
    listing: dict[Path, set[str]] = {}
    for r in records:
        if check_files:
            parent = r.path.parent
            if parent not in listing:
                listing[parent] = _list_files(parent)
            if r.path.name not in listing[parent]:
                missing.append(str(r.path))
                continue
        result.records.append(r)
    _report_missing(result, missing, len(records), f"entries of {path.name}", base)
    return result


# ---------------------------------------------------------------------------------- folder tree


def read_folder(root: str | Path, *, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> ReadResult:
    """Folder per class: ``root/<class>/**/*.wav`` (audio extensions only), classes sorted.

    If the top folders are all split names (``train``, ``valid``/``val``/``validation``,
    ``test``...), the layout ``root/<split>/<class>/...`` is read with splits. Folders starting
    with ``_`` or ``.``
    are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)

    def subdirs(d: Path) -> list[str]:
        return sorted(
            e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith(("_", "."))
        )

    top = subdirs(root)
    split_dirs: list[tuple[Path, str | None]]
    if top and all(
        t.lower() in ("train", "training", "valid", "val", "validation", "dev", "test", "eval")
        for t in top
    ):
        split_dirs = [(root / t, normalize_split(t)) for t in top]
    else:
        split_dirs = [(root, None)]
    records = []
    for base, split in split_dirs:
        for cls in subdirs(base):
            files = []
            for dirpath, dirnames, filenames in os.walk(base / cls):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
                files.extend(Path(dirpath) / f for f in sorted(filenames) if _is_audio(f, exts))
            for f in files:
                rel = f.relative_to(root).with_suffix("").as_posix()
                records.append(ClipRecord(path=f, labels=(cls,), split=split, id=rel))
    if not records:
        raise DatasetError(f"{root}: no audio files ({', '.join(exts)}) in <class>/ sub-folders")
    return ReadResult(records, LabelSet.from_records(records), kind="folder", source=root)


# ----------------------------------------------------------------------------------- dispatcher

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


__all__ = [
    "AUDIO_EXTENSIONS",
    "DatasetError",
    "READERS",
    "SPLITS",
    "detect_kind",
    "index_audio_dir",
    "read_audioset",
    "read_audioset_labels",
    "read_audioset_segments",
    "read_dataset",
    "read_esc50",
    "read_folder",
    "read_manifest",
    "read_speech_commands",
    "read_strong_labels",
    "split_labels",
]

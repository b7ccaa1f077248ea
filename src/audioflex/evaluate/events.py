"""Sound events: frame activity -> events, DESED TSV / JSON files (events -> frame targets for
training: :mod:`audioflex.data.targets`).

Time is in seconds. Frame ``t`` of a frame-wise output with hop ``h`` covers ``[t * h, (t + 1) * h)``
(plus an optional ``offset_s``), so an event made of frames ``a..b`` spans ``[a * h, (b + 1) * h)``.

Post-processing (:class:`PostProcessing`) in :func:`frames_to_events`, in the order of the DCASE/DESED
baseline recipe:
threshold -> median filter (over time, per class) -> connected segments -> merge gaps shorter
than ``merge_gap_s`` -> drop events shorter than ``min_duration_s`` -> seconds (optionally cut at
``duration_s``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from scipy.ndimage import median_filter

from audioflex.data.records import Event, FileEvent, as_event

logger = logging.getLogger(__name__)

__all__ = [
    "Event",
    "FileEvent",
    "PostProcessing",
    "TSV_HEADER",
    "as_event",
    "events_by_file",
    "frames_to_events",
    "median_filter_frames",
    "median_window",
    "min_event_frames",
    "read_events",
    "read_events_json",
    "read_events_tsv",
    "write_events_json",
    "write_events_tsv",
]

TSV_HEADER = ("filename", "onset", "offset", "event_label")
_EPS = 1e-9  # tolerance (in frames or seconds) for "shorter than" and frame-boundary decisions

PerClass = Union[float, Sequence[float], Mapping[str, float], np.ndarray]


# ------------------------------------------------------------------------------------ conversion
def events_by_file(events: Iterable[Any]) -> dict[str, list[Event]]:
    """Group a flat list of events that carry a ``filename`` into ``{filename: [Event]}`` (plain
    :class:`Event` values, sorted by onset)."""
    out: dict[str, list[Event]] = {}
    for i, e in enumerate(events):
        ev = as_event(e, where=f"events[{i}]")
        name = getattr(ev, "filename", "")
        if not name:
            raise ValueError(
                f"events[{i}] ({ev}) has no filename; pass a {{filename: [events]}} mapping instead "
                "of a flat list, or give events a filename (frames_to_events(..., filename=...))"
            )
        out.setdefault(name, []).append(Event(ev.onset, ev.offset, ev.label))
    return {k: sorted(v, key=_sort_key) for k, v in out.items()}


def _sort_key(e: Event) -> tuple[float, float, str]:
    return (e.onset, e.offset, e.label)


def _per_class(value: PerClass, labels: Sequence[str], name: str, default: float) -> np.ndarray:
    """A ``[C]`` float array from a scalar, a per-class sequence or a ``{label: value}`` mapping
    (labels missing from the mapping get ``default``)."""
    c = len(labels)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(labels))
        if unknown:
            raise ValueError(f"{name}: unknown label(s) {unknown}; known labels: {list(labels)[:10]}")
        return np.array([float(value.get(lab, default)) for lab in labels], dtype=np.float64)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(c, float(arr))
    if arr.shape != (c,):
        raise ValueError(f"{name}: got {arr.shape[0] if arr.ndim == 1 else arr.shape} values for {c} classes; "
                         "give one value, one per class, or a {label: value} dict")
    return arr


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor on any device
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------------- frames -> events
@dataclass(frozen=True)
class PostProcessing:
    """How frame probabilities become events (:func:`frames_to_events`).

    Each field is one value, one per class (in label order) or a ``{label: value}`` dict (labels
    missing from a dict get the default).

    Attributes:
        thresholds: a frame is active where ``prob >= threshold``; each in (0, 1].
        median_filter_s: median filter window (seconds) over the binary activity. The window is
            ``round(s / hop)`` frames, made odd by adding one if even; 1 frame or less: none.
        min_duration_s: events shorter than this are dropped (after gap merging).
        merge_gap_s: two events of a class separated by a gap shorter than this are merged.
    """

    thresholds: PerClass = 0.5
    median_filter_s: PerClass = 0.0
    min_duration_s: PerClass = 0.0
    merge_gap_s: PerClass = 0.0

    def per_class(self, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The four settings as ``[C]`` arrays (thresholds, median, min duration, merge gap), checked.

        Raises:
            ValueError: a threshold outside (0, 1], a negative time, an unknown label or a wrong
                number of per-class values (the message names the field).
        """
        labels = list(labels)
        thr = _per_class(self.thresholds, labels, "thresholds", 0.5)
        out_of_range = [f"{lab}={t:g}" for lab, t in zip(labels, thr) if not 0.0 < t <= 1.0]
        if out_of_range:
            scalar = not isinstance(self.thresholds, Mapping) and np.ndim(self.thresholds) == 0
            shown = f"{float(self.thresholds):g}" if scalar else ", ".join(out_of_range[:5])
            raise ValueError(
                f"thresholds must be in (0, 1] (a frame is active where its probability >= the threshold, so 0 "
                f"or less marks every frame active and more than 1 none), got {shown}"
            )
        times = []
        for name in ("median_filter_s", "min_duration_s", "merge_gap_s"):
            arr = _per_class(getattr(self, name), labels, name, 0.0)
            if np.any(arr < 0):
                raise ValueError(f"{name} must be >= 0 seconds, got {arr.tolist()}")
            times.append(arr)
        return thr, times[0], times[1], times[2]

    def check(self, labels: Sequence[str]) -> PostProcessing:
        """``self``, after checking it against ``labels`` (so bad options fail before any work)."""
        self.per_class(labels)
        return self

    def to_dict(self) -> dict[str, float | list[float] | dict[str, float]]:
        """The four fields as JSON-ready values (a number, a list or a ``{label: value}`` dict)."""
        out: dict[str, float | list[float] | dict[str, float]] = {}
        for name in ("thresholds", "median_filter_s", "min_duration_s", "merge_gap_s"):
            v = getattr(self, name)
            if isinstance(v, Mapping):
                out[name] = {str(k): float(x) for k, x in v.items()}
            elif np.ndim(v) > 0:
                out[name] = [float(x) for x in np.asarray(v).ravel()]
            else:
                out[name] = float(v)
        return out

    def threshold_summary(self) -> float | dict[str, float] | None:
        """The threshold as one number, a ``{label: value}`` dict, or None (a per-class list)."""
        thr = self.to_dict()["thresholds"]
        return None if isinstance(thr, list) else thr


def median_window(seconds: float, frame_hop_s: float) -> int:
    """Frames of the median filter for ``seconds`` at ``frame_hop_s``: ``round(seconds / hop)``,
    made odd by adding one if even; 1 or less means no filter."""
    n = int(round(seconds / frame_hop_s))
    return n + 1 if n > 1 and n % 2 == 0 else n


def min_event_frames(seconds: float, frame_hop_s: float) -> int:
    """The fewest frames an event needs to last ``seconds`` at ``frame_hop_s`` (the minimum-duration
    rule of :func:`frames_to_events`: ``n * hop >= seconds``, to within a rounding epsilon)."""
    n = max(0, math.ceil(seconds / frame_hop_s) - 1)
    while n * frame_hop_s < seconds - _EPS:
        n += 1
    return n


def median_filter_frames(active: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Median-filter each class of ``active [T, C]`` over time with its own window (frames; odd,
    ``<= 1`` means no filtering). Edges repeat the first/last frame."""
    out = np.array(active, copy=True)
    for c, size in enumerate(sizes):
        if size > 1:
            col = active[:, c].astype(np.uint8) if active.dtype == bool else active[:, c]
            out[:, c] = median_filter(col, size=int(size), mode="nearest")
    return out


def _segments(col: np.ndarray) -> list[tuple[int, int]]:
    """Runs of ``True`` in a 1-D bool array as ``(first, last)`` frame pairs (inclusive)."""
    padded = np.concatenate([[False], col, [False]]).astype(np.int8)
    d = np.diff(padded)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def frames_to_events(
    probs: Any,
    frame_hop_s: float,
    labels: Sequence[str],
    post: PostProcessing | None = None,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    filename: str | None = None,
) -> list[Event]:
    """Frame-wise class probabilities ``[T, C]`` -> a list of events, sorted by onset.

    Args:
        probs: ``[T, C]`` scores in [0, 1] (numpy array or tensor).
        frame_hop_s: seconds between frames.
        labels: the ``C`` class names.
        post: thresholds, median filter, minimum duration and gap merging (``ValueError`` on
            bad values, see :meth:`PostProcessing.per_class`); None: ``PostProcessing()``.
        offset_s: time of frame 0 (e.g. a window's start in a long file).
        duration_s: cut offsets at this time (same axis as the output, i.e. including
            ``offset_s``); events starting at or after it are dropped.
        filename: if given, events are :class:`FileEvent` values carrying it.

    Returns:
        Events with ``onset = offset_s + first * hop``, ``offset = offset_s + (last + 1) * hop``
        (rounded to 1e-9 s).
    """
    p = _to_numpy(probs)
    labels = list(labels)
    if p.ndim != 2:
        raise ValueError(f"probs must be [T, C] (frames x classes), got shape {p.shape}")
    if p.shape[1] != len(labels):
        raise ValueError(f"probs has {p.shape[1]} classes but {len(labels)} labels were given")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or inf; check the model output before post-processing")
    if not (frame_hop_s > 0 and math.isfinite(frame_hop_s)):
        raise ValueError(f"frame_hop_s must be a positive number of seconds, got {frame_hop_s}")
    if post is not None and not isinstance(post, PostProcessing):
        raise TypeError(
            f"post must be a PostProcessing, e.g. PostProcessing(thresholds=0.3), got {type(post).__name__}"
        )
    thr, med, min_dur, gap = (post or PostProcessing()).per_class(labels)

    active = median_filter_frames(p >= thr[None, :], [median_window(s, frame_hop_s) for s in med])

    events: list[Event] = []
    for c, label in enumerate(labels):
        segs = _segments(active[:, c])
        merged: list[list[int]] = []
        for a, b in segs:
            if merged and (a - merged[-1][1] - 1) * frame_hop_s < gap[c] - _EPS:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        shortest = min_event_frames(min_dur[c], frame_hop_s)
        for a, b in merged:
            if b - a + 1 < shortest:
                continue
            on = offset_s + a * frame_hop_s
            off = offset_s + (b + 1) * frame_hop_s
            if duration_s is not None:
                if on >= duration_s:
                    continue
                off = min(off, duration_s)
            on, off = round(on, 9), round(off, 9)
            if filename is not None:
                events.append(FileEvent(on, off, label, filename))
            else:
                events.append(Event(on, off, label))
    events.sort(key=_sort_key)
    return events


# ---------------------------------------------------------------------------- events -> frames
# ------------------------------------------------------------------------------------------ files
EventsInput = Union[Mapping[str, Iterable[Any]], Iterable[Any]]


def _as_mapping(events: EventsInput) -> dict[str, list[Event]]:
    if isinstance(events, Mapping):
        out: dict[str, list[Event]] = {}
        for name, evs in events.items():
            out[str(name)] = sorted(
                (as_event(e, where=f"events[{name!r}]") for e in evs), key=_sort_key
            )
        return out
    return events_by_file(events)


def _fmt(x: float, decimals: int) -> str:
    s = f"{x:.{decimals}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def write_events_tsv(path: str | Path, events: EventsInput, *, decimals: int = 3) -> Path:
    """Write events as a DESED TSV (``filename\\tonset\\toffset\\tevent_label``, header line, one
    row per event, times rounded to ``decimals``).

    ``events`` is ``{filename: [events]}`` or a flat list of events carrying ``filename``. Files
    without events get no row (the DESED convention); keep them with :func:`write_events_json`.
    """
    data = _as_mapping(events)
    for name in data:
        if any(ch in name for ch in "\t\n\r"):
            raise ValueError(f"write_events_tsv: filename {name!r} contains a tab or newline")
    for name, evs in data.items():
        for e in evs:
            if any(ch in e.label for ch in "\t\n\r"):
                raise ValueError(f"write_events_tsv: label {e.label!r} of {name!r} contains a tab or newline")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("\t".join(TSV_HEADER) + "\n")
        for name, evs in data.items():
            for e in evs:
                f.write(f"{name}\t{_fmt(e.onset, decimals)}\t{_fmt(e.offset, decimals)}\t{e.label}\n")
    return path


def read_events_tsv(path: str | Path) -> dict[str, list[Event]]:
    """Read a DESED-style TSV into ``{filename: [Event]}`` (sorted by onset).

    Needs a header naming ``filename``, ``onset``, ``offset`` and ``event_label`` (any order, other
    columns ignored). Rows with empty onset/offset/label list a file without events.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"events TSV {path} does not exist")
    out: dict[str, list[Event]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected a header {'/'.join(TSV_HEADER)}")
        header = [h.strip() for h in header]
        missing = [h for h in TSV_HEADER if h not in header]
        if missing:
            raise ValueError(
                f"{path}: header {header} lacks column(s) {missing}; a DESED TSV starts with "
                f"'{chr(9).join(TSV_HEADER)}' (tab-separated)"
            )
        col = {h: header.index(h) for h in TSV_HEADER}
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            row = row + [""] * (len(header) - len(row))
            name = row[col["filename"]].strip()
            on, off, label = (row[col[k]].strip() for k in ("onset", "offset", "event_label"))
            if not name:
                raise ValueError(f"{path}:{line_no}: empty filename")
            evs = out.setdefault(name, [])
            if not on and not off and not label:
                continue
            if not label:
                raise ValueError(f"{path}:{line_no}: empty event_label in row {row!r}")
            try:
                evs.append(Event(float(on), float(off), label))
            except ValueError as e:
                raise ValueError(f"{path}:{line_no}: bad event row {row!r}: {e}") from None
    return {k: sorted(v, key=_sort_key) for k, v in out.items()}


def write_events_json(path: str | Path, events: EventsInput, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"files": {filename: [{"onset", "offset", "event_label"}]}, **extra}`` (files without
    events are kept, as empty lists)."""
    data = _as_mapping(events)
    doc: dict[str, Any] = {
        "files": {
            name: [{"onset": e.onset, "offset": e.offset, "event_label": e.label} for e in evs]
            for name, evs in data.items()
        }
    }
    if extra:
        doc.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def read_events_json(path: str | Path) -> dict[str, list[Event]]:
    """Read ``{"files": {filename: [events]}}`` (as written by :func:`write_events_json` and
    ``audioflex detect``) or a bare ``{filename: [events]}`` JSON into ``{filename: [Event]}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"events JSON {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if isinstance(doc, dict) and isinstance(doc.get("files"), dict):
        doc = doc["files"]
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise ValueError(f"{path}: expected {{filename: [{{onset, offset, event_label}}, ...]}}")
    return _as_mapping(doc)


def read_events(path: str | Path) -> dict[str, list[Event]]:
    """:func:`read_events_json` for ``.json`` files, else :func:`read_events_tsv`."""
    return read_events_json(path) if Path(path).suffix.lower() == ".json" else read_events_tsv(path)

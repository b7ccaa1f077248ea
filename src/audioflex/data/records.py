"""Dataset records: one ``ClipRecord`` per clip, a ``LabelSet`` vocabulary and a ``ReadResult``.

Readers (``audioflex.data.readers``) turn the standard dataset layouts into these plain values;
nothing here opens an audio file (durations from file headers: :mod:`audioflex.data.durations`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "tr": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "development": "valid",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}


def normalize_split(value: str | None, *, where: str = "split") -> str | None:
    """Map a split name (``train``/``valid``/``test`` or a common alias) to its canonical name.

    ``None`` or an empty string gives ``None``. Raises ``ValueError`` naming ``where`` otherwise.
    """
    if value is None:
        return None
    key = str(value).strip().lower()
    if not key:
        return None
    if key not in _SPLIT_ALIASES:
        raise ValueError(
            f"{where}: unknown split {value!r}; use one of {', '.join(SPLITS)} "
            f"(aliases: {', '.join(sorted(k for k in _SPLIT_ALIASES if k not in SPLITS))})"
        )
    return _SPLIT_ALIASES[key]


@dataclasses.dataclass(frozen=True)
class Event:
    """A sound event inside a clip: ``onset``/``offset`` in seconds from the clip's start."""

    onset: float
    offset: float
    label: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.onset) and math.isfinite(self.offset)):
            raise ValueError(
                f"Event {self.label!r}: onset/offset must be finite, "
                f"got {self.onset}, {self.offset}"
            )
        if self.onset < 0 or self.offset < self.onset:
            raise ValueError(
                f"Event {self.label!r}: need 0 <= onset <= offset, "
                f"got onset={self.onset}, offset={self.offset}"
            )


@dataclasses.dataclass(frozen=True)
class FileEvent(Event):
    """An :class:`Event` that also names its audio file (what :func:`frames_to_events` returns when
    given a ``filename``, and what a flat event list written to TSV needs)."""

    filename: str = ""



def as_event(obj: Any, *, where: str = "event") -> Event:
    """An :class:`Event` from an ``Event``-like object (``onset``, ``offset``, ``label`` or
    ``event_label`` attributes), a dict with those keys, or an ``(onset, offset, label)`` tuple.
    A ``filename`` attribute/key is kept (as a :class:`FileEvent`)."""
    if isinstance(obj, Event):
        return obj
    if isinstance(obj, Mapping):
        get = obj.get
    elif isinstance(obj, (tuple, list)) and len(obj) == 3:
        return Event(float(obj[0]), float(obj[1]), str(obj[2]))
    else:

        def get(key: str, default: Any = None) -> Any:
            return getattr(obj, key, default)

    label = get("label", None)
    if label is None:
        label = get("event_label", None)
    onset, offset = get("onset", None), get("offset", None)
    if onset is None or offset is None or label is None:
        raise TypeError(
            f"{where}: cannot read an event from {obj!r}; give an Event, a dict with "
            "onset/offset/event_label (or label), or an (onset, offset, label) tuple"
        )
    filename = get("filename", None)
    if filename:
        return FileEvent(float(onset), float(offset), str(label), str(filename))
    return Event(float(onset), float(offset), str(label))


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset.

    Attributes:
        path: the audio file.
        labels: clip-level labels (names, in the dataset's ``LabelSet``); may be empty.
        events: strong labels (sorted by onset); empty for weakly labelled sets.
        fold: cross-validation fold (ESC-50: 1..5) or ``None``.
        split: ``"train"``, ``"valid"``, ``"test"`` or ``None``.
        duration: length of the audio file in seconds, when known (see
            :func:`~audioflex.data.durations.with_durations`).
        start, end: the part of the file that is the clip, in seconds (``end=None``: to the end of
            the file). Only set when a file holds more than the clip (e.g. full AudioSet videos).
        id: a stable identifier (file stem, YTID, relative path...); defaults to the file stem.
    """

    path: Path
    labels: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    fold: int | None = None
    split: str | None = None
    duration: float | None = None
    start: float = 0.0
    end: float | None = None
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if isinstance(self.labels, str):
            raise TypeError(
                f"ClipRecord {self.path}: labels must be a sequence of names, "
                f"not the string {self.labels!r}"
            )
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(
            self, "events", tuple(sorted(self.events, key=lambda e: (e.onset, e.offset, e.label)))
        )
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(
                f"ClipRecord {self.path}: split must be one of {SPLITS} or None, got {self.split!r}"
            )
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError(
                f"ClipRecord {self.path}: need 0 <= start < end, "
                f"got start={self.start}, end={self.end}"
            )
        if not self.id:
            object.__setattr__(self, "id", self.path.stem)

    def read_seconds(self, max_seconds: float | None = None) -> float | None:
        """Seconds to read from ``start``: to ``end`` (None: to the end of the file), at most ``max_seconds``."""
        span = None if self.end is None else self.end - self.start
        if max_seconds is not None:
            span = max_seconds if span is None else min(span, max_seconds)
        return span

    @property
    def clip_duration(self) -> float | None:
        """Seconds the clip spans (``end - start``, else ``duration - start``), if known."""
        if self.end is not None:
            return self.end - self.start
        if self.duration is not None:
            return max(0.0, self.duration - self.start)
        return None


class LabelSet:
    """An ordered label vocabulary: names <-> indices, multi-hot and one-hot encoding.

    ``ids`` optionally holds a second identifier per label (AudioSet MIDs), usable wherever a name
    is.
    """

    def __init__(self, names: Iterable[str], ids: Iterable[str] | None = None) -> None:
        self.names: tuple[str, ...] = tuple(str(n) for n in names)
        self.ids: tuple[str, ...] | None = None if ids is None else tuple(str(i) for i in ids)
        seen: dict[str, int] = {}
        for i, name in enumerate(self.names):
            if name in seen:
                raise ValueError(
                    f"LabelSet: label {name!r} appears twice (positions {seen[name]} and {i})"
                )
            seen[name] = i
        if self.ids is not None:
            if len(self.ids) != len(self.names):
                raise ValueError(f"LabelSet: {len(self.ids)} ids for {len(self.names)} names")
            for i, ident in enumerate(self.ids):
                if ident in seen and seen[ident] != i:
                    raise ValueError(
                        f"LabelSet: id {ident!r} is ambiguous (also a name or another id)"
                    )
                seen[ident] = i
        self._index = seen

    @classmethod
    def from_records(cls, records: Iterable[ClipRecord]) -> LabelSet:
        """The sorted set of all clip labels and event labels in ``records``."""
        names: set[str] = set()
        for r in records:
            names.update(r.labels)
            names.update(e.label for e in r.events)
        return cls(sorted(names))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __getitem__(self, index: int) -> str:
        return self.names[index]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and (self.names, self.ids) == (other.names, other.ids)

    def __hash__(self) -> int:
        return hash((self.names, self.ids))

    def __repr__(self) -> str:
        head = ", ".join(repr(n) for n in self.names[:5])
        return f"LabelSet({len(self)} labels: {head}{', ...' if len(self) > 5 else ''})"

    def index(self, name: str) -> int:
        """Index of a label name (or id). Raises ``KeyError`` listing a few known labels."""
        try:
            return self._index[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self.names[:8])
            raise KeyError(
                f"unknown label {name!r}; known labels ({len(self)}): "
                f"{known}{', ...' if len(self) > 8 else ''}"
            ) from None

    def encode(self, labels: Iterable[str], *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Multi-hot vector ``[C]`` of ``labels``."""
        out = torch.zeros(len(self), dtype=dtype)
        for name in labels:
            out[self.index(name)] = 1
        return out

    def encode_batch(
        self, batch: Sequence[Iterable[str]], *, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Multi-hot matrix ``[B, C]``."""
        out = torch.zeros(len(batch), len(self), dtype=dtype)
        for b, labels in enumerate(batch):
            for name in labels:
                out[b, self.index(name)] = 1
        return out

    def class_index(self, labels: Sequence[str]) -> int:
        """The class index of a single-label clip (for cross-entropy); errors if not exactly one."""
        if len(labels) != 1:
            raise ValueError(f"class_index: expected exactly one label, got {list(labels)!r}")
        return self.index(labels[0])

    def decode(self, scores: torch.Tensor, threshold: float = 0.5) -> tuple[str, ...]:
        """Names whose score ``[C]`` is >= ``threshold``."""
        if scores.ndim != 1 or scores.shape[0] != len(self):
            raise ValueError(
                f"decode: expected scores of shape [{len(self)}], got {list(scores.shape)}"
            )
        return tuple(self.names[i] for i in torch.nonzero(scores >= threshold).flatten().tolist())

    def to_list(self) -> list[str]:
        return list(self.names)


@dataclasses.dataclass
class ReadResult:
    """What a reader returns: the records, the label vocabulary and what could not be used.

    ``missing`` lists files (or ids) the metadata names but that were not found (those clips are
    left out of ``records``); ``warnings`` holds human-readable notes, also sent to ``logging``.
    """

    records: list[ClipRecord]
    labels: LabelSet
    kind: str = ""
    source: Path | None = None
    missing: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.records)

    @property
    def label_names(self) -> list[str]:
        return list(self.labels.names)

    def split_counts(self) -> dict[str | None, int]:
        """Clips per split (``None``: clips without a split)."""
        counts: dict[str | None, int] = {}
        for r in self.records:
            counts[r.split] = counts.get(r.split, 0) + 1
        return counts

    def warn(self, message: str) -> None:
        """Record a warning and log it."""
        self.warnings.append(message)
        logger.warning(message)

    def select(
        self,
        *,
        split: str | None = None,
        folds: Iterable[int] | None = None,
        exclude_folds: Iterable[int] | None = None,
    ) -> list[ClipRecord]:
        """Records of one split and/or some folds (ESC-50 cross-validation: ``exclude_folds``).

        Asking for a split of a dataset none of whose clips has one is an error saying what to do
        (clips are never given a split here).
        """
        want_split = normalize_split(split, where="select(split=...)")
        if want_split is not None and self.records and not any(r.split for r in self.records):
            folds_hint = " or select folds" if any(r.fold is not None for r in self.records) else ""
            raise ValueError(
                f"{self.source or 'dataset'}: split {split!r} asked for, but none of its {len(self.records)} clips "
                "has a split (no split column, split.csv, <split>_list.txt or split folders); add a split.csv "
                f"(filename,split) beside the metadata{folds_hint}, or drop the split to use every clip"
            )
        inc = None if folds is None else set(folds)
        exc = set() if exclude_folds is None else set(exclude_folds)
        return [
            r
            for r in self.records
            if (want_split is None or r.split == want_split)
            and (inc is None or r.fold in inc)
            and r.fold not in exc
        ]

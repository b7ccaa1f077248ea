"""DESED as released and as users lay it out: a folder of audio + strong/weak label TSVs.

* release layout: ``audio/{train,validation,eval}/...`` + ``metadata/{train,validation,eval}/*.tsv``
  (the split is the folder: train, validation -> valid, eval -> test; ``*_durations.tsv`` give
  durations);
* flat layout: ``audio/*.wav`` + strong TSV(s) (``filename onset offset event_label``) and weak
  TSV(s) (``filename event_labels``) at the root or in ``meta/``, splits from ``split.csv``
  (applied by :func:`~audioflex.data.readers.detect.read_dataset`).

Every TSV is read with :func:`~audioflex.data.readers.strong.read_strong_labels`; clips named by
several TSVs (a strong and a weak one) are merged: events from the strong one, labels from both.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from audioflex.data.readers.common import DatasetError, header_of, open_text
from audioflex.data.readers.strong import read_strong_labels
from audioflex.data.records import ClipRecord, LabelSet, ReadResult, normalize_split

LABEL_HEADERS = ("onset", "event_label", "event_labels")


def is_label_tsv(path: Path) -> bool:
    """A TSV whose header is ``filename`` + onset/event_label(s) (strong or weak labels)."""
    cols = header_of(path)
    return path.suffix.lower() == ".tsv" and cols[:1] == ["filename"] and any(c in cols for c in LABEL_HEADERS)


def _is_durations(path: Path) -> bool:
    return path.suffix.lower() == ".tsv" and header_of(path)[:2] == ["filename", "duration"]


def label_tsvs(root: Path) -> list[Path]:
    """The label TSVs of a flat layout: at ``root`` or in ``root/meta``."""
    return [p for where in (root, root / "meta") if where.is_dir() for p in sorted(where.glob("*.tsv"))
            if is_label_tsv(p)]


def is_release_layout(root: Path) -> bool:
    """``metadata/<split>/**.tsv`` with label TSVs beside an ``audio/`` folder."""
    meta = root / "metadata"
    return (root / "audio").is_dir() and meta.is_dir() and any(is_label_tsv(p) for p in meta.rglob("*.tsv"))


def _read_durations(path: Path) -> dict[str, float]:
    out = {}
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 2 and row[1].strip():
                try:
                    out[row[0].strip()] = float(row[1])
                except ValueError:
                    continue
    return out


def _merge(parts: Sequence[ReadResult], kind: str, source: Path, labels: Sequence[str] | None) -> ReadResult:
    merged: dict[Path, ClipRecord] = {}
    result = ReadResult([], LabelSet(()), kind=kind, source=source)
    for part in parts:
        result.missing.extend(part.missing)
        result.warnings.extend(part.warnings)
        for r in part.records:
            old = merged.get(r.path)
            if old is None:
                merged[r.path] = r
                continue
            names = tuple(sorted(set(old.labels) | set(r.labels)))
            merged[r.path] = dataclasses.replace(old, labels=names, events=old.events or r.events,
                                                 split=old.split or r.split)
    result.records = list(merged.values())
    result.labels = LabelSet(labels) if labels is not None else LabelSet.from_records(result.records)
    return result


def read_desed(
    root: str | Path, *, audio_dir: str | Path | None = None, labels: Sequence[str] | None = None
) -> ReadResult:
    """DESED in the release layout or the flat layout (see the module docstring).

    Args:
        root: the dataset folder (a TSV: read as :func:`read_strong_labels`).
        audio_dir: release layout: the folder holding ``{train,validation,eval}/``; flat layout:
            the folder of the audio files (default ``root/audio``, then ``root``).
        labels: fixes the vocabulary order (default: sorted labels found).
    """
    root = Path(root)
    if root.is_file():  # one TSV: its clips
        return read_strong_labels(root, audio_dir=audio_dir, labels=labels)
    parts: list[ReadResult] = []
    if is_release_layout(root):
        audio_root = Path(audio_dir) if audio_dir is not None else root / "audio"
        durations: dict[str, float] = {}
        for split_dir in sorted(p for p in (root / "metadata").iterdir() if p.is_dir()):
            try:
                split = normalize_split(split_dir.name, where=str(split_dir))
            except ValueError as exc:
                raise DatasetError(f"{exc}; name the metadata folders train, validation and eval") from None
            for tsv in sorted(split_dir.rglob("*.tsv")):
                if _is_durations(tsv):
                    durations.update(_read_durations(tsv))
                    continue
                if not is_label_tsv(tsv):
                    continue
                rel = tsv.relative_to(split_dir).with_suffix("")
                dirs = [audio_root / split_dir.name / rel, audio_root / split_dir.name / rel.parent,
                        audio_root / split_dir.name]
                parts.append(read_strong_labels(tsv, audio_dir=dirs, split=split))
        result = _merge(parts, "desed", root, labels)
        if durations:
            result.records = [dataclasses.replace(r, duration=durations[r.path.name])
                              if r.duration is None and r.path.name in durations else r for r in result.records]
        return result
    tsvs = label_tsvs(root)
    if not tsvs:
        raise DatasetError(
            f"{root}: no DESED label TSV (filename, onset, offset, event_label) at the root, in meta/ or "
            "in metadata/<split>/; pass the TSV itself"
        )
    bases = [Path(audio_dir)] if audio_dir is not None else [root / "audio", root]
    for tsv in tsvs:
        parts.append(read_strong_labels(tsv, audio_dir=bases))
    return _merge(parts, "desed", root, labels)

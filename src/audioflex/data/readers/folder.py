"""Folder per class: ``<class>/**/*.wav``, optionally under ``train/``, ``valid/``, ``test/`` split folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from audioflex.data.readers.common import AUDIO_EXTENSIONS, DatasetError, is_audio, metadata_files
from audioflex.data.records import ClipRecord, LabelSet, ReadResult, normalize_split


def read_folder(root: str | Path, *, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> ReadResult:
    """Folder per class: ``root/<class>/**/*.wav`` (audio extensions only), classes sorted.

    If the top folders are all split names (``train``, ``valid``/``val``/``validation``,
    ``test``...), the layout ``root/<split>/<class>/...`` is read with splits. Folders starting
    with ``_`` or ``.`` are ignored. A single class is an error (it is almost always an ``audio/``
    folder whose labels are in a metadata file); the message names the metadata files found.
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
                files.extend(Path(dirpath) / f for f in sorted(filenames) if is_audio(f, exts))
            for f in files:
                rel = f.relative_to(root).with_suffix("").as_posix()
                records.append(ClipRecord(path=f, labels=(cls,), split=split, id=rel))
    if not records:
        raise DatasetError(f"{root}: no audio files ({', '.join(exts)}) in <class>/ sub-folders")
    labels = LabelSet.from_records(records)
    if len(labels) == 1:
        meta = metadata_files(root)
        shown = ", ".join(str(p.relative_to(root)) for p in meta[:6]) + (", ..." if len(meta) > 6 else "")
        raise DatasetError(
            f"{root}: read as a folder per class, it has one class ({labels[0]!r}, {len(records)} files); "
            + (f"metadata here was not recognised: {shown}; pass that file instead (-d {meta[0]}) or "
               "give kind=..." if meta else "a folder dataset needs one sub-folder per class, or give a "
               "manifest (path,label) or a DESED TSV")
        )
    return ReadResult(records, labels, kind="folder", source=root)

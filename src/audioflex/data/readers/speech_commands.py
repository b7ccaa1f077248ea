"""Speech Commands V1/V2: ``<word>/<speaker>_nohash_<n>.wav``, splits from the validation/testing lists."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from audioflex.data.readers.common import DatasetError, is_audio, list_files, report_missing
from audioflex.data.records import ClipRecord, LabelSet, ReadResult

logger = logging.getLogger(__name__)


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
        for name in sorted(list_files(root / word)):
            if not is_audio(name, (".wav",)):
                continue
            rel = f"{word}/{name}"
            found.add(rel)
            split = "test" if rel in test else "valid" if rel in valid else "train"
            result.records.append(
                ClipRecord(path=root / word / name, labels=(word,), split=split, id=rel[:-4])
            )
    listed = {p for p in valid | test if p.split("/", 1)[0] in words}
    missing = sorted(listed - found)
    report_missing(
        result, missing, len(listed), "clips of validation_list.txt/testing_list.txt", root
    )
    return result

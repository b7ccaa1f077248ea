"""HEAR task directories: reading one (metadata, label vocabulary, splits, audio folders), its
data splits (train/valid/test or k folds), its default score, and the embeddings the HEAR kit's
runner wrote beside a task.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class TaskError(ValueError):
    """A HEAR task directory that cannot be used; the message says which file and why."""


@dataclass
class HearTask:
    """A HEAR task: metadata, label vocabulary, split -> {file: labels or events}."""

    root: Path
    metadata: dict[str, Any]
    labels: list[str]
    splits: dict[str, dict[str, Any]]
    audio_dirs: dict[str, Path]

    @property
    def is_event(self) -> bool:
        return self.metadata.get("embedding_type", "scene") == "event"

    @property
    def multilabel(self) -> bool:
        return self.is_event or self.metadata.get("prediction_type") == "multilabel"

    @property
    def folds(self) -> list[str]:
        return sorted(s for s in self.splits if s.startswith("fold"))


def read_task(root: str | Path, sample_rate: int | None = None, *, audio: bool = True) -> HearTask:
    """Read a HEAR task directory; audio from ``<sample_rate>/`` (else the first rate present;
    ``audio=False``: a directory without audio, as the HEAR kit's embedding output)."""
    root = Path(root)
    meta_path = root / "task_metadata.json"
    if not meta_path.is_file():
        raise TaskError(f"{root}: no task_metadata.json; not a HEAR task directory")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise TaskError(f"{meta_path}: invalid JSON ({e})") from e
    vocab = root / "labelvocabulary.csv"
    if not vocab.is_file():
        raise TaskError(f"{root}: no labelvocabulary.csv (idx,label)")
    with open(vocab, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "label" not in rows[0]:
        raise TaskError(f"{vocab}: expected a header 'idx,label' and one row per label")
    labels = [r["label"] for r in sorted(rows, key=lambda r: int(r.get("idx", 0)))]
    listed = meta.get("splits")
    if isinstance(listed, list) and listed:
        names = [str(n["split"] if isinstance(n, dict) else n) for n in listed]
        absent = [n for n in names if not (root / f"{n}.json").is_file()]
        if absent:
            raise TaskError(f"{root}: task_metadata.json lists split(s) {absent} without their <split>.json")
    else:
        names = [p.stem for p in root.glob("*.json") if p.name != "task_metadata.json" and "." not in p.stem]
    splits = {n: json.loads((root / f"{n}.json").read_text()) for n in sorted(names)}
    if not splits:
        raise TaskError(f"{root}: no split files (train.json, valid.json, test.json or fold00.json …)")
    rates = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not rates and audio:
        raise TaskError(f"{root}: no audio folder <sample_rate>/<split>/ found")
    rate = sample_rate if sample_rate in rates else (rates[0] if rates else sample_rate)
    dirs = {n: root / str(rate) / n for n in splits}
    known = set(labels)
    for n, items in splits.items():
        for fname, lab in items.items():
            names_ = [e["label"] for e in lab] if lab and isinstance(lab[0], dict) else list(lab)
            bad = set(names_) - known
            if bad:
                raise TaskError(f"{root / (n + '.json')}: {fname} has labels {sorted(bad)} not in labelvocabulary.csv")
    return HearTask(root, meta, labels, splits, dirs)


def metric_name(task: HearTask) -> str:
    """The HEAR default score of a task type (used when its metadata lists no ``evaluation``)."""
    if task.is_event:
        return "event_onset_200ms_fms"
    return "mAP" if task.multilabel else "top1_acc"


def data_splits(task: HearTask) -> list[dict[str, Any]]:
    """``[{"train": [...], "valid": name, "test": name}]``: one for train/valid/test tasks; for k
    folds, fold ``i`` is tested with fold ``i + 1`` as validation and the rest for training."""
    folds = task.folds
    if folds:
        if len(folds) < 3:
            raise TaskError(f"{task.root}: k-fold tasks need at least 3 folds, got {folds}")
        return [{"test": t, "valid": folds[(i + 1) % len(folds)],
                 "train": [f for f in folds if f not in (t, folds[(i + 1) % len(folds)])]}
                for i, t in enumerate(folds)]
    need = {"train", "valid", "test"} - set(task.splits)
    if need:
        raise TaskError(f"{task.root}: missing split file(s) {sorted(need)}.json (or use fold00.json …)")
    return [{"train": ["train"], "valid": "valid", "test": "test"}]


def read_heareval_embeddings(root: str | Path) -> tuple[HearTask, dict[str, dict[str, tuple[np.ndarray, Any]]]]:
    """A task directory written by the HEAR kit's embedding runner (``heareval.embeddings.runner``:
    ``task_metadata.json``, ``labelvocabulary.csv``, ``<split>.json`` and
    ``<split>/<file>.embedding.npy`` with ``<file>.timestamps.json`` for event tasks) -> the task
    and ``{split: {file: (vectors, timestamps ms or None)}}``."""
    task = read_task(root, audio=False)
    emb: dict[str, dict[str, tuple[np.ndarray, Any]]] = {}
    for split, items in task.splits.items():
        emb[split] = {}
        for fname in items:
            npy = task.root / split / f"{fname}.embedding.npy"
            if not npy.is_file():
                raise TaskError(f"{npy}: missing; run the HEAR embedding runner on split {split!r} again")
            ts_file = task.root / split / f"{fname}.timestamps.json"
            ts = np.asarray(json.loads(ts_file.read_text()), np.float64) if ts_file.is_file() else None
            emb[split][fname] = (np.load(npy).astype(np.float32), ts)
    return task, emb


__all__ = ["HearTask", "TaskError", "data_splits", "metric_name", "read_heareval_embeddings", "read_task"]

"""WebDataset-format tar shards: write them from any reader, stream them in training.

A shard is a plain tar file; each clip is two members sharing a key: ``<key>.<ext>`` (the audio
file's bytes, unchanged: wav/flac/ogg/mp3) and ``<key>.json`` (labels, events, split, fold,
duration, source path). Beside the shards, ``labels.json`` holds the label vocabulary and
``manifest.json`` the clip count of every shard (``{"clips", "multilabel", "shards": [{"name",
"clips"}]}``), so training knows the set's size and loss without reading the tars. Shards are
readable by the ``webdataset`` package as they are; audioflex streams them itself with
:class:`ShardStream` (no extra dependency), splitting shards across ``torch.distributed`` ranks
and DataLoader workers so each shard is read by exactly one worker.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from audioflex.data.records import ClipRecord, Event

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*([0-9.]+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """``"1GB"``, ``"500MB"``, ``"64k"`` or a byte count -> bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"shard size {text!r} is not a size like 1GB, 500MB or 65536")
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    size = int(float(m.group(1)) * mult)
    if size <= 0:
        raise ValueError(f"shard size must be positive, got {text!r}")
    return size


def record_meta(r: ClipRecord) -> dict[str, Any]:
    """The JSON stored beside a clip's audio."""
    return {
        "id": r.id,
        "labels": list(r.labels),
        "events": [{"onset": e.onset, "offset": e.offset, "label": e.label} for e in r.events],
        "split": r.split,
        "fold": r.fold,
        "duration": r.duration,
        "start": r.start,
        "end": r.end,
        "source": str(r.path),
    }


@dataclass
class ShardReport:
    """What ``write_shards`` wrote and skipped."""

    shards: list[Path] = field(default_factory=list)
    clips: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    records: Sequence[ClipRecord],
    out_dir: str | Path,
    *,
    shard_size: str | int = "1GB",
    prefix: str = "shard",
    labels: Sequence[str] | None = None,
) -> ShardReport:
    """Write ``records`` into tar shards of about ``shard_size`` bytes each (``prefix-000000.tar``).

    Each shard is written to a temporary name and renamed when complete, so an interrupted run
    leaves only whole shards. ``labels`` (the vocabulary) goes to ``labels.json`` beside them.
    Files that cannot be read are listed in the report and skipped.
    """
    limit = parse_size(shard_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = ShardReport()
    tar: tarfile.TarFile | None = None
    tmp: Path | None = None
    size = 0
    counts: list[int] = []
    multilabel = False

    def close() -> None:
        nonlocal tar, tmp
        if tar is not None and tmp is not None:
            tar.close()
            final = tmp.with_suffix("")
            os.replace(tmp, final)
            report.shards.append(final)
        tar, tmp = None, None

    for i, r in enumerate(records):
        try:
            audio = Path(r.path).read_bytes()
        except OSError as e:
            report.missing.append(f"{r.path}: {e.strerror or e}")
            continue
        meta = json.dumps(record_meta(r)).encode()
        if tar is None or (size > 0 and size + len(audio) > limit):
            close()
            tmp = out / f"{prefix}-{len(report.shards):06d}.tar.tmp"
            tar = tarfile.open(tmp, "w")  # noqa: SIM115  (spans several records; closed by close())
            size = 0
            counts.append(0)
        key = f"{i:09d}"
        ext = Path(r.path).suffix.lstrip(".").lower() or "wav"
        _add(tar, f"{key}.{ext}", audio)
        _add(tar, f"{key}.json", meta)
        size += len(audio) + len(meta)
        report.clips += 1
        report.bytes += len(audio)
        counts[-1] += 1
        multilabel = multilabel or len(r.labels) != 1
    close()
    if labels is not None:
        (out / "labels.json").write_text(json.dumps(list(labels)) + "\n")
    manifest = {
        "clips": report.clips,
        "multilabel": multilabel,
        "shards": [{"name": sh.name, "clips": n} for sh, n in zip(report.shards, counts)],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return report


MANIFEST = "manifest.json"
LABELS = "labels.json"


@dataclass
class ShardInfo:
    """What a shard directory declares: its shards, label vocabulary and (if written) manifest."""

    shards: list[Path]
    labels: list[str]
    manifest: dict[str, Any] | None = None

    @property
    def num_clips(self) -> int | None:
        return None if self.manifest is None else int(self.manifest.get("clips", 0))

    @property
    def multilabel(self) -> bool | None:
        return None if self.manifest is None else self.manifest.get("multilabel")


def read_shard_info(path: str | Path) -> ShardInfo:
    """Shards, labels (``labels.json``, required) and ``manifest.json`` (optional) of a shard directory."""
    p = Path(path)
    shards = list_shards(p)
    base = p if p.is_dir() else p.parent
    lab = base / LABELS
    if not lab.is_file():
        raise FileNotFoundError(
            f"{base}: no {LABELS} beside the shards; write shards with `audioflex shard` (or write_shards(labels=...))"
        )
    try:
        labels = json.loads(lab.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{lab}: not valid JSON ({exc})") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{lab}: expected a JSON list of label names")
    man = base / MANIFEST
    manifest = json.loads(man.read_text()) if man.is_file() else None
    return ShardInfo(shards, labels, manifest)


def list_shards(spec: str | Path) -> list[Path]:
    """Shard files of a directory (sorted ``*.tar``) or a single tar file."""
    p = Path(spec)
    if p.is_dir():
        shards = sorted(p.glob("*.tar"))
        if not shards:
            raise FileNotFoundError(f"{p}: no .tar shards found")
        return shards
    if p.is_file():
        return [p]
    raise FileNotFoundError(f"{p}: no such shard directory or file")


def iter_shard(path: Path) -> Iterator[tuple[bytes, str, dict[str, Any]]]:
    """Yield ``(audio_bytes, ext, meta)`` for each clip of one shard, streaming."""
    pending: dict[str, dict[str, Any]] = {}
    with tarfile.open(path, "r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.rpartition(".")
            fh = tar.extractfile(member)
            data = fh.read() if fh is not None else b""
            entry = pending.setdefault(key, {})
            if ext == "json":
                entry["meta"] = json.loads(data)
            else:
                entry["audio"], entry["ext"] = data, ext
            if "meta" in entry and "audio" in entry:
                yield entry["audio"], entry["ext"], entry["meta"]
                del pending[key]


def meta_to_record(meta: dict[str, Any], source: str) -> ClipRecord:
    """Rebuild a ClipRecord (its ``path`` names the shard member) from stored JSON."""
    return ClipRecord(
        path=Path(source),
        labels=tuple(meta.get("labels", ())),
        events=tuple(Event(e["onset"], e["offset"], e["label"]) for e in meta.get("events", ())),
        fold=meta.get("fold"),
        split=meta.get("split"),
        duration=meta.get("duration"),
        start=float(meta.get("start") or 0.0),
        end=meta.get("end"),
        id=meta.get("id") or source,
    )


class ShardStream(IterableDataset):
    """Stream ``(waveform [T], ClipRecord)`` from shards.

    Shards are split across ``torch.distributed`` ranks, then across DataLoader workers
    (shard ``i`` goes to global worker ``i % (world * workers)``); with ``shuffle`` the shard order
    and a buffer of clips are shuffled per ``epoch`` (call :meth:`set_epoch`). Undecodable clips
    are logged and skipped.
    """

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        *,
        sample_rate: int,
        shuffle: bool = False,
        buffer: int = 256,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(shards, (str, Path)):
            self.shards = list_shards(shards)
        else:
            self.shards = [Path(s) for s in shards]
        self.sample_rate = sample_rate
        self.shuffle = shuffle
        self.buffer = buffer
        self.seed = seed
        self.epoch = 0
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_shards(self) -> list[Path]:
        """The shards this rank/worker reads this epoch."""
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = list(self.shards)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        slot, slots = self.rank * nworkers + wid, self.world_size * nworkers
        return order[slot::slots]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ClipRecord]]:
        from audioflex.audio.io import AudioError, load_audio

        info = get_worker_info()
        rng = random.Random(self.seed * 1000003 + self.epoch * 101 + self.rank * 7 + (info.id if info else 0))
        buf: list[tuple[torch.Tensor, ClipRecord]] = []
        for shard in self.my_shards():
            for audio, _ext, meta in iter_shard(shard):
                name = f"{shard.name}:{meta.get('id')}"
                try:
                    wave = load_audio(io.BytesIO(audio), self.sample_rate)
                except AudioError as e:
                    logger.warning("skipping %s (%s)", name, e)
                    continue
                record = meta_to_record(meta, name)
                if record.start or record.end is not None:
                    lo = round(record.start * self.sample_rate)
                    hi = None if record.end is None else round(record.end * self.sample_rate)
                    wave = wave[lo:hi]
                item = (wave, record)
                if not self.shuffle:
                    yield item
                    continue
                buf.append(item)
                if len(buf) >= self.buffer:
                    yield buf.pop(rng.randrange(len(buf)))
        rng.shuffle(buf)
        yield from buf

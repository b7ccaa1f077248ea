"""Batches built on the fly from a ``(wave, ClipRecord)`` stream (shards), with the same per-clip processing."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import IterableDataset

from audioflex.data.datasets.items import BadClip
from audioflex.data.datasets.spectrogram import SpectrogramDataset
from audioflex.data.records import ClipRecord
from audioflex.packing import plan_batches

logger = logging.getLogger(__name__)


def stream_key(record: ClipRecord) -> int:
    """A stable integer seed index of a streamed clip (CRC-32 of its id)."""
    return zlib.crc32(record.id.encode("utf-8"))


class StreamingBatches(IterableDataset):
    """Batches built on the fly from a ``(wave [T], ClipRecord)`` stream (e.g. a ``ShardStream``).

    Each clip goes through ``dataset`` (a :class:`SpectrogramDataset` with no records of its
    own: :meth:`WaveformDataset.from_wave` then :meth:`SpectrogramDataset.process`, seeded by
    :func:`stream_key`). Packed models: processed clips fill a buffer of ``buffer`` clips; when it is
    full it is planned first-fit-decreasing into ``max_tokens`` batches and the fullest batch is
    yielded; the rest is planned and yielded at the end of the stream. Fixed models: consecutive
    ``batch_size`` clips. Yields lists of items (``DataLoader(batch_size=None, collate_fn=...)``).
    """

    def __init__(
        self,
        stream: Iterable[tuple[torch.Tensor, ClipRecord]],
        dataset: SpectrogramDataset,
        *,
        packed: bool,
        max_tokens: int | None = None,
        max_clips: int | None = None,
        batch_size: int = 12,
        buffer: int = 64,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if packed and (max_tokens is None or max_tokens <= 0):
            raise ValueError("StreamingBatches: packed batches need max_tokens > 0")
        if batch_size < 1 or buffer < 1:
            raise ValueError(f"StreamingBatches: batch_size and buffer must be >= 1, got {batch_size}, {buffer}")
        self.stream, self.dataset = stream, dataset
        self.packed, self.max_tokens, self.max_clips = packed, max_tokens, max_clips
        self.batch_size, self.buffer, self.drop_last = batch_size, buffer, drop_last

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.stream, "set_epoch"):
            self.stream.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def items(self) -> Iterator[Any]:
        """Processed clips in stream order."""
        ds = self.dataset
        for wave, record in self.stream:
            key = stream_key(record)
            try:
                item = ds.waves.from_wave(wave, record, key)
            except (KeyError, ValueError) as exc:  # a label outside the vocabulary, a bad crop
                logger.warning("skipping streamed clip %s: %s", record.id, exc)
                yield BadClip(key, str(record.path), str(exc))
                continue
            yield ds.process(item, key, record)

    def __iter__(self) -> Iterator[list[Any]]:
        buf: list[Any] = []
        for item in self.items():
            if isinstance(item, BadClip):
                yield [item]
                continue
            buf.append(item)
            if not self.packed:
                if len(buf) == self.batch_size:
                    yield buf
                    buf = []
            elif len(buf) >= self.buffer:
                batch = self._plan(buf)[0]
                yield [buf[i] for i in batch]
                keep = set(batch)
                buf = [it for i, it in enumerate(buf) if i not in keep]
        if not buf:
            return
        if not self.packed:
            if not self.drop_last:
                yield buf
            return
        for batch in self._plan(buf):
            yield [buf[i] for i in batch]

    def _plan(self, buf: Sequence[Any]) -> list[list[int]]:
        """Batches of ``buf`` (first-fit-decreasing), fullest first."""
        assert self.max_tokens is not None
        sizes = [min(int(it[2]["tokens"]), self.max_tokens) for it in buf]
        plan = plan_batches(sizes, self.max_tokens, max_clips=self.max_clips)
        return sorted(plan, key=lambda b: -sum(sizes[i] for i in b))

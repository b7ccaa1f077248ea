"""The one audio reader behind tag, detect, embed and HEAR: a file or a waveform, read block by block.

:class:`AudioReader` gives mono float32 audio at a target sample rate in three ways:

- :meth:`~AudioReader.read` (random access, ``[stop - start]`` samples): a file is read around the
  span at its own rate and resampled with a small margin (HEAR gathers its windows this way);
- :meth:`~AudioReader.blocks` (sequential): a file is read ``block_s`` seconds at a time and
  resampled with a streaming soxr resampler, bit-identical to resampling the whole file;
- :meth:`~AudioReader.windows` (sequential windows of any hop, cut from the blocks with a small
  buffer): what tagging and detection score. Memory is one block plus one window.

A waveform ``[T]`` is checked once (:func:`check_waveform`: mono, non-empty, finite), resampled
whole if its rate differs, and sliced. :func:`check_audio_file` lists (and logs) the non-fatal
problems of an input file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audioflex.audio.frontend.base import Frontend
from audioflex.audio.io import AudioError, AudioInfo, audio_info, load_audio, resample, truncation_note

logger = logging.getLogger(__name__)

__all__ = ["AudioInput", "AudioReader", "Piece", "check_audio_file", "check_waveform", "iter_pieces"]

AudioInput = str | Path | torch.Tensor


def check_waveform(wave: torch.Tensor, name: str = "waveform") -> torch.Tensor:
    """``wave`` as a detached float32 CPU tensor ``[T]``; ``AudioError`` (naming ``name``) when it
    is not mono ``[T]``, has no samples, or holds NaN/Inf."""
    wave = wave.detach()
    if wave.ndim != 1:
        raise AudioError(
            f"{name}: expected a mono waveform [T], got shape {tuple(wave.shape)}; average the channels first"
        )
    if wave.numel() == 0:
        raise AudioError(f"{name}: zero samples; pass at least one sample")
    if not torch.isfinite(wave).all():
        raise AudioError(f"{name}: contains NaN or Inf samples; clean the input first")
    return wave.float().cpu()


@dataclass
class Piece:
    """A window of a longer input: ``wave [n]`` starting at ``start_s`` seconds (sample
    ``start``), the ``index``-th window of its input."""

    start_s: float
    wave: torch.Tensor
    index: int = 0
    start: int = 0

    @property
    def num_samples(self) -> int:
        return int(self.wave.shape[-1])


class AudioReader:
    """Mono float32 audio of a file (read block by block, never whole) or a waveform ``[T]``, at
    ``sample_rate``.

    Args:
        source: a path, or a waveform ``[T]`` at ``source_rate`` (default ``sample_rate``).
        sample_rate: the rate everything is returned at.
        source_rate: the waveform's rate (resampled whole when it differs).
        check: validate a waveform with :func:`check_waveform` (HEAR's batch API checks its
            ``[n, N]`` input itself and passes False).
        margin_s: context read on each side by :meth:`read` when a file is resampled.

    Raises:
        AudioError: an unreadable or empty file (naming it), or a bad waveform.
    """

    def __init__(
        self,
        source: AudioInput,
        sample_rate: int,
        *,
        source_rate: int | None = None,
        check: bool = True,
        margin_s: float = 0.05,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.path: Path | None = None
        self.info: AudioInfo | None = None
        self.wave: torch.Tensor | None = None
        if isinstance(source, torch.Tensor):
            wave = check_waveform(source) if check else source.detach().float().cpu()
            if source_rate and source_rate != self.sample_rate:
                wave = resample(wave, source_rate, self.sample_rate)
            self.wave = wave
            self.num_samples = int(wave.shape[-1])
            self.file_rate = self.sample_rate
            self.margin = 0
            return
        self.path = Path(source)
        self.info = info = audio_info(source)
        if info.frames <= 0:
            raise AudioError(f"{source}: contains no samples; the file is empty or truncated (re-export or skip it)")
        self.file_rate = int(info.sample_rate)
        self.num_samples = max(1, round(info.frames * self.sample_rate / self.file_rate))
        self.margin = 0 if self.file_rate == self.sample_rate else int(margin_s * self.file_rate)

    @property
    def duration_s(self) -> float:
        """Length in seconds at ``sample_rate``."""
        return self.num_samples / self.sample_rate

    # ------------------------------------------------------------------ random access
    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[stop - start]`` with ``0 <= start < stop <= num_samples`` (a file: read
        around the span at its own rate, resampled with ``margin_s`` of context, padded with
        zeros where rounding at its end leaves it short)."""
        if self.wave is not None:
            return self.wave[start:stop]
        assert self.path is not None
        fr, sr = self.file_rate, self.sample_rate
        if fr == sr:
            out = load_audio(self.path, None, offset=start / sr, duration=(stop - start) / sr)
        else:
            lo = max(0, math.floor(start * fr / sr) - self.margin)
            hi = math.ceil(stop * fr / sr) + self.margin
            raw = load_audio(self.path, None, offset=lo / fr, duration=(hi - lo) / fr)
            res = resample(raw, fr, sr)
            k0 = round(lo * sr / fr)  # global index of res[0]
            out = res[start - k0 : stop - k0]
        if out.shape[-1] < stop - start:  # rounding at the file's end: pad with zeros
            out = torch.nn.functional.pad(out, (0, stop - start - out.shape[-1]))
        return out[: stop - start]

    # ------------------------------------------------------------------ sequential
    def blocks(self, block_s: float = 60.0) -> Iterator[torch.Tensor]:
        """Consecutive chunks ``[n]`` of the whole input: a file ``block_s`` seconds at a time at
        its own rate through a streaming soxr resampler (bit-identical to resampling it whole); a
        waveform sliced into ``block_s`` pieces."""
        if self.wave is not None:
            block = max(1, round(block_s * self.sample_rate))
            for s in range(0, self.wave.numel(), block):
                yield self.wave[s : s + block]
            return
        assert self.path is not None and self.info is not None
        fr, total = self.file_rate, int(self.info.frames)
        block = max(1, round(block_s * fr))
        resampler = None
        if fr != self.sample_rate:
            import soxr

            resampler = soxr.ResampleStream(fr, self.sample_rate, 1, dtype="float32", quality="HQ")
        for s in range(0, total, block):
            n = min(block, total - s)
            x = load_audio(self.path, None, offset=s / fr, duration=n / fr)
            if resampler is not None:
                y = resampler.resample_chunk(x.numpy(), last=s + n >= total)
                x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
            if x.numel():
                yield x

    def windows(
        self, window: int, hop: int | None = None, *, block_s: float | None = None, min_last: int = 0
    ) -> Iterator[Piece]:
        """Windows of ``window`` samples starting every ``hop`` (default: ``window``, no overlap)
        until one reaches the end; only the last may be shorter, and a last window shorter than
        ``min_last`` samples is dropped (it is covered by the one before). An input shorter than
        one window is one short window. Read in blocks of ``block_s`` seconds (default: one
        window)."""
        hop = hop or window
        if window <= 0 or hop <= 0:
            raise ValueError(f"window and hop must be positive sample counts, got {window} and {hop}")
        sr = self.sample_rate
        chunks = self.blocks(block_s if block_s is not None else window / sr)
        buf = torch.zeros(0)
        buf_start = 0  # absolute sample index of buf[0]
        nxt, k, last_end = 0, 0, 0
        for chunk in chunks:
            buf = torch.cat([buf, chunk]) if buf.numel() else chunk
            while nxt + window <= buf_start + buf.numel():
                yield Piece(nxt / sr, buf[nxt - buf_start : nxt - buf_start + window], k, nxt)
                last_end, nxt, k = nxt + window, nxt + hop, k + 1
            cut = min(nxt - buf_start, buf.numel())
            if cut > 0:
                buf, buf_start = buf[cut:].clone(), buf_start + cut
        total = buf_start + buf.numel()
        if total == 0:
            raise AudioError(f"{self.path or 'audio'}: zero samples")
        tail = buf[nxt - buf_start :]
        if k == 0 or (last_end < total and tail.numel() >= min_last):
            yield Piece(nxt / sr, tail, k, nxt)


def iter_pieces(
    source: AudioInput,
    sample_rate: int,
    piece_s: float,
    hop_s: float | None = None,
    *,
    source_rate: int | None = None,
    min_piece_s: float = 0.0,
) -> Iterator[Piece]:
    """Consecutive pieces of ``piece_s`` seconds every ``hop_s`` (default: no overlap) of a path
    (read one piece at a time, never whole) or a waveform ``[T]`` at ``source_rate``: the
    :meth:`AudioReader.windows` of the input in seconds. A last piece shorter than
    ``min_piece_s`` is skipped (it is covered by the previous one)."""
    hop_s = hop_s or piece_s
    if piece_s <= 0 or hop_s <= 0:
        raise ValueError(f"piece and hop lengths must be positive, got {piece_s} and {hop_s}")
    reader = AudioReader(source, sample_rate, source_rate=source_rate)
    size, hop = round(piece_s * sample_rate), round(hop_s * sample_rate)
    yield from reader.windows(max(1, size), max(1, hop), min_last=math.ceil(min_piece_s * sample_rate))


def check_audio_file(
    path: str | Path, frontend: Frontend, min_frames: int = 1, info: AudioInfo | None = None
) -> list[str]:
    """Non-fatal problems of an input file, each also logged as a warning naming the file: a
    truncated file, and audio too short for ``frontend`` (:meth:`Frontend.too_short` with
    ``min_frames``). ``info``: the file's :func:`audio_info` if already read."""
    info = info if info is not None else audio_info(path)
    notes = [truncation_note(info)]
    if info.sample_rate > 0:
        notes.append(frontend.too_short(round(info.frames * frontend.sample_rate / info.sample_rate), min_frames))
    out = [f"{path}: {n}" for n in notes if n]
    for msg in out:
        logger.warning("%s", msg)
    return out

"""Any-length inference helpers: stream audio in pieces, batch them, aggregate scores.

How a long input is handled (``Pipeline.tag`` and ``Pipeline.clip_scores``):

- **Packed models (ElasticAST).** The audio is cut into consecutive, non-overlapping pieces of at
  most ``piece_s`` seconds (default: the span the model's time-position table covers at the
  front end's frame shift, e.g. 10.24 s at 10 ms, 20.48 s at 20 ms; a clip up to that length
  is one piece, fed at its native length). Pieces are read from disk one block at a time, their
  spectrograms are packed into batches of at most ``max_tokens`` tokens, and each piece is scored
  as its own clip. The file's scores are the duration-weighted mean of the pieces' probabilities
  (``aggregate="mean"``) or their maximum (``"max"``). Memory is bounded by one batch of pieces.
- **Fixed-window models (AST, HTS-AT, PaSST).** The audio is cut into windows of the model's input
  length with ``window_hop`` overlap (default 50 %); short inputs and the last window are padded by
  the front end/model as in training. Windows are scored in batches of ``batch_size``; scores are
  aggregated the same way.

Files that are used but suspicious are reported with a ``logging`` warning naming the file
(:func:`check_audio_file`): a truncated file (its header promises more than it holds; the part it
holds is used) and audio shorter than one front-end window (packed models: one patch of frames;
it is padded to that).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from audioflex.audio.frontend.base import Frontend
from audioflex.audio.io import AudioError, AudioInfo, audio_info, load_audio, truncation_note

logger = logging.getLogger(__name__)


@dataclass
class Piece:
    """A piece of a longer input: ``wave [T]`` starting at ``start_s`` seconds."""

    start_s: float
    wave: torch.Tensor

    @property
    def num_samples(self) -> int:
        return int(self.wave.shape[-1])


def iter_pieces(
    source: str | Path | torch.Tensor,
    sample_rate: int,
    piece_s: float,
    hop_s: float | None = None,
    *,
    source_rate: int | None = None,
    min_piece_s: float = 0.0,
) -> Iterator[Piece]:
    """Yield consecutive pieces of ``piece_s`` seconds every ``hop_s`` (default: no overlap).

    ``source`` is a path (read one piece at a time, never whole) or a waveform ``[T]`` at
    ``source_rate`` (default ``sample_rate``; resampled if different). Pieces after the first that
    are shorter than ``min_piece_s`` are skipped (they are covered by the previous window).
    """
    hop_s = hop_s or piece_s
    if piece_s <= 0 or hop_s <= 0:
        raise ValueError(f"piece and hop lengths must be positive, got {piece_s} and {hop_s}")
    if isinstance(source, torch.Tensor):
        wave = source
        if wave.ndim != 1:
            raise ValueError(f"expected a mono waveform [T], got shape {tuple(wave.shape)}")
        if source_rate and source_rate != sample_rate:
            from audioflex.audio.io import resample

            wave = resample(wave, source_rate, sample_rate)
        if wave.numel() == 0:
            raise AudioError("waveform: zero samples; pass at least one sample")
        if not torch.isfinite(wave).all():
            raise AudioError("waveform: contains NaN or Inf samples; clean the input first")
        n, size, hop = wave.shape[-1], round(piece_s * sample_rate), round(hop_s * sample_rate)
        start = 0
        while True:
            chunk = wave[start : start + size]
            if start > 0 and chunk.numel() < min_piece_s * sample_rate:
                break
            yield Piece(start / sample_rate, chunk)
            if start + size >= n:
                break
            start += hop
        return
    info = audio_info(source)
    total = info.duration
    k = 0
    while True:
        start = k * hop_s
        if start >= total and k > 0:
            break
        wave = load_audio(source, sample_rate, offset=start, duration=piece_s)
        if k > 0 and (wave.numel() == 0 or wave.numel() < min_piece_s * sample_rate):
            break
        yield Piece(start, wave)
        if start + piece_s >= total:
            break
        k += 1


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


def aggregate_scores(scores: torch.Tensor, weights: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Combine per-piece scores ``[P, C]`` with weights ``[P]`` into ``[C]`` (``mean`` or ``max``)."""
    if how == "mean":
        w = weights / weights.sum()
        return (scores * w[:, None]).sum(0)
    if how == "max":
        return scores.max(0).values
    raise ValueError(f"aggregate must be 'mean' or 'max', got {how!r}")


def default_piece_s(max_time_patches: int, patch: int, hop_s: float) -> float:
    """Seconds covered by a packed model's time-position table at a frame shift."""
    return max(1, max_time_patches) * patch * hop_s

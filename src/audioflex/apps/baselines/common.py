"""What the baselines share: their log-mel front end and the waveform of a clip record."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from audioflex.audio.frontend.logmel import LogMel, LogMelConfig
from audioflex.audio.io import AudioError, load_audio
from audioflex.data.records import ClipRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")


def baseline_logmel(sample_rate: int = 16000, n_mels: int = 64) -> LogMel:
    """The baselines' front end: ``n_mels`` log-mel bands (dB), 10 ms hop, 32 ms (16 kHz) window, up to 14 kHz."""
    config = LogMelConfig(
        sample_rate=sample_rate, n_fft=512 if sample_rate <= 16000 else 1024, hop_length=sample_rate // 100,
        n_mels=n_mels, fmax=min(14000.0, sample_rate / 2),
    )
    return LogMel(config).eval()


def clip_logmel(logmel: LogMel, record: ClipRecord, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
    """The clip's log-mel ``[T, F]`` (from ``record.start``, at most ``max_seconds``) and its duration (s)."""
    sr = logmel.config.sample_rate
    wave = load_audio(record.path, sr, offset=record.start, duration=record.read_seconds(max_seconds))
    with torch.no_grad():
        spec, _ = logmel(wave[None])
    return spec[0].numpy().T, wave.shape[-1] / sr


def read_each(
    records: Sequence[ClipRecord], read: Callable[[ClipRecord], T], progress: Callable[[int], Any] | None = None
) -> tuple[list[tuple[int, T]], list[str]]:
    """``read`` every record: ``(index, result)`` of the readable ones and the paths of the others
    (each logged; the rest are still read). ``progress(1)`` after each readable record."""
    done, skipped = [], []
    for i, rec in enumerate(records):
        try:
            done.append((i, read(rec)))
        except (AudioError, OSError) as e:
            logger.warning("baseline: skipping %s (%s)", rec.path, e)
            skipped.append(str(rec.path))
            continue
        if progress is not None:
            progress(1)
    return done, skipped

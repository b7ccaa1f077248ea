"""Clips as waveforms: crop/cap policy (native length or fixed clip), waveform augmentation, clip targets."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from audioflex.audio.augment import (
    add_background,
    change_speed,
    overlay,
    random_gain,
    random_time_shift,
    sample_crop,
    speed_factors,
)
from audioflex.audio.io import AudioError, load_audio_with_info, truncation_note
from audioflex.data.datasets.items import CROP, MIX, NOISE, OVERLAY, SPEED, BadClip, clip_generator
from audioflex.data.records import ClipRecord, Event, LabelSet
from audioflex.data.samplers import derive_seed
from audioflex.data.targets import is_strong

logger = logging.getLogger(__name__)


def _window(
    duration: float | None, window: float | None, train: bool, policy: str, g: torch.Generator
) -> tuple[float, float | None]:
    """(offset, length) in seconds of the part of a clip of ``duration`` s to read (None: to the end)."""
    if window is None or duration is None or duration <= window:
        return 0.0, None
    if train:
        start, size = sample_crop(duration, window, generator=g, integer=False)
        return float(start), float(size)
    if policy == "center":
        return (duration - window) / 2.0, window
    return 0.0, window


class WaveformDataset(Dataset):
    """Clips as ``(wave [T] float32, target, meta)`` at ``sample_rate``.

    Crop policy (``window`` seconds): ``max_seconds`` (native-length models, e.g. ElasticAST)
    keeps clips at their length up to the cap; ``clip_seconds`` (fixed-length models) crops to
    the model's length — both crop at random in training (``train=True``) and at the start
    (``eval_crop="start"``) or centre (``"center"``) in evaluation. Shorter clips are returned
    as they are; fixed-length padding happens on the spectrogram (front-end ``target_length`` or
    the collator), as in the AST recipe.

    Targets: ``target="multi_hot"`` gives ``[C]`` float (multi-hot for BCE, one-hot for a
    single-label clip), ``"index"`` gives the class index (int64 scalar; single-label only).
    Strong-label (frame) targets are made by :class:`~audioflex.data.datasets.spectrogram.SpectrogramDataset`,
    which knows the crop.

    Training augmentation, in this order: ``speed`` (a factor uniform in ``[low, high]``: the
    clip is played that much faster, tempo and pitch together; after the crop, so a clip read at
    the cap may come out up to ``1 / low`` times longer — :meth:`planned_seconds` says how long),
    ``gain_db`` (random gain), ``time_shift_ms`` (circular shift), then with probability
    ``background_prob`` one of the ``background`` recordings
    (``[N_i]`` at ``sample_rate``) mixed in at an SNR uniform in ``background_snr_db``
    (:func:`~audioflex.audio.augment.add_background`; its own random stream per clip and epoch).

    Event overlay (strong labels): with probability ``overlay_prob`` a strongly labelled clip gets
    an excerpt of another strongly labelled clip of the set added (at a random place, the clip's RMS
    over the excerpt's uniform in ``overlay_snr_db`` dB), before the gain; the excerpt's events,
    moved to where they now sound, are in ``meta["overlay_events"]`` (times from the clip's start,
    as ``ClipRecord.events``) and their labels join the clip target. Weakly labelled clips are left
    alone (for clip labels, use mixup). :class:`~audioflex.data.datasets.spectrogram.SpectrogramDataset`
    adds those events to the frame targets.

    Unreadable files give a :class:`BadClip` (logged, never raised); a truncated file is used as
    far as it goes, with the reason in ``meta["problems"]``.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        labels: LabelSet,
        *,
        sample_rate: int,
        train: bool = False,
        max_seconds: float | None = None,
        clip_seconds: float | None = None,
        eval_crop: str = "start",
        target: str = "multi_hot",
        gain_db: float = 0.0,
        time_shift_ms: float = 0.0,
        background: Sequence[torch.Tensor] = (),
        background_prob: float = 0.0,
        background_snr_db: Sequence[float] = (0.0, 20.0),
        speed: Sequence[float] = (),
        overlay_prob: float = 0.0,
        overlay_snr_db: Sequence[float] = (-5.0, 5.0),
        seed: int = 0,
    ) -> None:
        if max_seconds is not None and clip_seconds is not None:
            raise ValueError("WaveformDataset: give max_seconds (native length) or clip_seconds (fixed), not both")
        if eval_crop not in ("start", "center"):
            raise ValueError(f"WaveformDataset: eval_crop must be 'start' or 'center', got {eval_crop!r}")
        if target not in ("multi_hot", "index"):
            raise ValueError(f"WaveformDataset: target must be 'multi_hot' or 'index', got {target!r}")
        for name, v in (("max_seconds", max_seconds), ("clip_seconds", clip_seconds)):
            if v is not None and not v > 0:
                raise ValueError(f"WaveformDataset: {name} must be > 0 seconds, got {v}")
        self.records = list(records)
        self.labels = labels
        self.sample_rate = int(sample_rate)
        self.train = train
        self.window = clip_seconds if clip_seconds is not None else max_seconds
        self.eval_crop = eval_crop
        self.target = target
        self.gain_db = float(gain_db)
        if not time_shift_ms >= 0:
            raise ValueError(f"WaveformDataset: time_shift_ms must be >= 0, got {time_shift_ms}")
        self.max_shift = int(round(time_shift_ms * self.sample_rate / 1000.0))
        if not 0.0 <= background_prob <= 1.0:
            raise ValueError(f"WaveformDataset: background_prob must be in [0, 1], got {background_prob}")
        if background_prob > 0 and not background:
            raise ValueError("WaveformDataset: background_prob > 0 needs background noise recordings")
        if len(background_snr_db) != 2 or not background_snr_db[0] <= background_snr_db[1]:
            raise ValueError(f"WaveformDataset: background_snr_db must be [low, high] dB, "
                             f"got {list(background_snr_db)}")
        if not 0.0 <= overlay_prob <= 1.0:
            raise ValueError(f"WaveformDataset: overlay_prob must be in [0, 1], got {overlay_prob}")
        if len(overlay_snr_db) != 2 or not overlay_snr_db[0] <= overlay_snr_db[1]:
            raise ValueError(f"WaveformDataset: overlay_snr_db must be [low, high] dB, got {list(overlay_snr_db)}")
        self.overlay_prob = float(overlay_prob)
        self.overlay_snr_db = (float(overlay_snr_db[0]), float(overlay_snr_db[1]))
        self._overlay_pool = [i for i, r in enumerate(self.records) if is_strong(r)] if overlay_prob > 0 else []
        self.speed = speed_factors(speed, "WaveformDataset: speed")
        self.background = list(background)
        self.background_prob = float(background_prob)
        self.background_snr_db = (float(background_snr_db[0]), float(background_snr_db[1]))
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def item_seed(self, index: int, stream: int, epoch: int | None = None) -> int:
        """The seed of one random draw of clip ``index`` in ``epoch`` (default: this one; train) or
        fixed (eval)."""
        e = (self.epoch if epoch is None else epoch) if self.train else -1
        return derive_seed(self.seed, stream, e, index)

    def encode(self, record: ClipRecord) -> torch.Tensor:
        if self.target == "index":
            return torch.tensor(self.labels.class_index(record.labels), dtype=torch.long)
        return self.labels.encode(record.labels)

    def read_seconds(self, record: ClipRecord) -> float | None:
        """Seconds of audio this dataset reads of ``record`` (None: unknown duration, no cap)."""
        d = record.clip_duration
        if d is None:
            return self.window
        return d if self.window is None else min(d, self.window)

    def speed_of(self, index: int, epoch: int | None = None) -> float:
        """The speed factor of clip ``index`` in ``epoch`` (default: the current one); 1 when off."""
        if not self.train or self.speed is None:
            return 1.0
        lo, hi = self.speed
        g = clip_generator(self.item_seed(index, SPEED, epoch))
        return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))

    def planned_seconds(self, record: ClipRecord, index: int, epoch: int | None = None) -> float | None:
        """Seconds of audio ``record`` (seed index ``index``) will have in ``epoch``, after its speed
        change (None: unknown duration)."""
        secs = self.read_seconds(record)
        speed = self.speed_of(index, epoch)
        return secs if secs is None or speed == 1.0 else secs / speed

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]] | BadClip:
        r = self.records[index]
        g = clip_generator(self.item_seed(index, CROP))
        offset, length = _window(r.clip_duration, self.window, self.train, self.eval_crop, g)
        if length is None and r.end is not None:
            length = r.end - r.start - offset
        try:
            wave, info = load_audio_with_info(r.path, self.sample_rate, offset=r.start + offset, duration=length)
        except AudioError as exc:
            logger.warning("skipping unreadable clip: %s", exc)
            return BadClip(index, str(r.path), str(exc))
        if self.window is not None and r.clip_duration is None:
            # duration unknown up front: crop the decoded audio
            wave, start = self._crop_decoded(wave, g)
            offset += start / self.sample_rate
        note = truncation_note(info)
        return self._finish(wave, r, index, offset, g, [note] if note else [])

    def from_wave(self, wave: torch.Tensor, record: ClipRecord, index: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The item of an already decoded clip ``wave [T]`` (a shard stream): same crop/gain draws
        as :meth:`__getitem__` with ``index`` as the clip's seed index."""
        g = clip_generator(self.item_seed(index, CROP))
        duration = wave.shape[0] / self.sample_rate
        offset, length = _window(duration, self.window, self.train, self.eval_crop, g)
        if length is not None:
            lo = int(round(offset * self.sample_rate))
            wave = wave[lo : lo + max(1, int(round(length * self.sample_rate)))]
            offset = lo / self.sample_rate
        return self._finish(wave, record, index, offset, g)

    def _crop_decoded(self, wave: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, int]:
        n = int(round(self.window * self.sample_rate))
        if wave.shape[0] <= n:
            return wave, 0
        if self.train:
            start = int(torch.randint(0, wave.shape[0] - n + 1, (1,), generator=g))
        else:
            start = (wave.shape[0] - n) // 2 if self.eval_crop == "center" else 0
        return wave[start : start + n], start

    def _finish(
        self,
        wave: torch.Tensor,
        r: ClipRecord,
        index: int,
        offset: float,
        g: torch.Generator,
        problems: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        speed = self.speed_of(index)
        if speed != 1.0:
            wave = change_speed(wave, speed)
        extra: tuple[Event, ...] = ()
        if self.train and self.overlay_prob > 0:
            wave, extra = self._overlay(wave, index, offset)
        if self.train and self.gain_db > 0:
            wave = random_gain(wave, -self.gain_db, self.gain_db, generator=g)
        if self.train and self.max_shift > 0:
            wave = random_time_shift(wave, self.max_shift, generator=g)
        if self.train and self.background_prob > 0:
            gn = clip_generator(self.item_seed(index, NOISE))
            if float(torch.rand((), generator=gn)) < self.background_prob:
                wave = add_background(wave, self.background, self.background_snr_db, generator=gn)
        meta: dict[str, Any] = {
            "index": index,
            "id": r.id,
            "path": str(r.path),
            "offset_s": offset,
            "duration_s": wave.shape[0] / self.sample_rate,
            "seed": self.item_seed(index, MIX),
            "speed": speed,
            "problems": list(problems or []),
        }
        target = self.encode(r)
        if extra:
            meta["overlay_events"] = extra
            target = torch.maximum(target, self.labels.encode([e.label for e in extra]).to(target.dtype))
        return wave, target, meta

    def _overlay(self, wave: torch.Tensor, index: int, offset: float) -> tuple[torch.Tensor, tuple[Event, ...]]:
        """``wave [T]`` (clip ``index``, ``offset`` s into it) with an excerpt of another strong clip
        overlaid, and the excerpt's events in this clip's time; unchanged for a weakly labelled clip
        and when the draw says no."""
        pool = self._overlay_pool  # the strong clips, sorted; the partner is drawn uniformly among the others
        me = bisect.bisect_left(pool, index)
        if me == len(pool) or pool[me] != index or len(pool) < 2 or wave.shape[0] == 0:
            return wave, ()
        g = clip_generator(self.item_seed(index, OVERLAY))
        u = torch.rand(5, generator=g, dtype=torch.float64).tolist()
        if u[0] >= self.overlay_prob:
            return wave, ()
        k = min(int(u[1] * (len(pool) - 1)), len(pool) - 2)
        other = self.records[pool[k + 1 if k >= me else k]]
        sr, t = self.sample_rate, wave.shape[0]
        span = other.clip_duration
        length = t / sr if span is None else min(t / sr, span)
        start = 0.0 if span is None else u[2] * (span - length)
        try:
            excerpt, _ = load_audio_with_info(other.path, sr, offset=other.start + start, duration=length)
        except AudioError as exc:
            logger.warning("no overlay for clip %d: %s", index, exc)
            return wave, ()
        excerpt = excerpt[:t]
        if excerpt.shape[0] == 0:
            return wave, ()
        at = min(int(u[3] * (t - excerpt.shape[0] + 1)), t - excerpt.shape[0])
        lo, hi = self.overlay_snr_db
        wave = overlay(wave, excerpt, at, lo + (hi - lo) * u[4])
        shift, end = offset + at / sr - start, start + excerpt.shape[0] / sr
        events = tuple(
            Event(max(e.onset, start) + shift, min(e.offset, end) + shift, e.label)
            for e in other.events
            if e.offset > start and e.onset < end
        )
        return wave, events

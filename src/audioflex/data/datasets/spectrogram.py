"""Waveform items through a front end: random frame shift, frame crop, token budget, frame targets, SpecAugment."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from audioflex.audio.augment import SpecAugment, sample_crop
from audioflex.audio.frontend.base import Frontend, FrontendConfig, build_frontend
from audioflex.data.datasets.items import FCROP, SHIFT, SPEC, BadClip, clip_generator
from audioflex.data.datasets.waveform import WaveformDataset
from audioflex.data.records import ClipRecord
from audioflex.data.samplers import derive_seed
from audioflex.data.targets import FrameTargetSpec, clip_frame_targets
from audioflex.packing import num_tokens


class SpectrogramDataset(Dataset):
    """A :class:`WaveformDataset` through a front end: ``(spec [F, T'], target, meta)``.

    ``frame_shifts_ms`` (training, Kaldi-style front ends): each clip gets a frame shift drawn
    from the list with ``(seed, epoch, index)`` — random resolution, as ElasticAST trains with
    10-40 ms; one front end per shift is built once and reused. Evaluation uses the front end's
    own shift. ``spec_augment`` masks each clip inside its valid frames, with time widths scaled
    to the clip's frame shift.

    Native-length (packed) training only: ``random_crop_frames=(lo, hi)`` crops each clip to
    ``U{lo .. min(T, hi)}`` frames at its own frame shift (ElasticAST: ``(384, 3072)``; shorter
    clips are kept whole), and ``max_tokens`` crops a clip that would exceed the token budget
    (``patch`` x ``patch`` tokens) at random. Both crops are drawn from ``(seed, epoch, index)``
    and the clip's planned frame count, so :meth:`token_counts` knows every clip's tokens before
    any batch is built.

    ``frame_targets`` (:class:`~audioflex.data.targets.FrameTargetSpec`): strong labels
    (``ClipRecord.events``, plus an overlaid excerpt's ``meta["overlay_events"]``) become
    ``meta["frame_target"] [S, C]`` at the model's frame hop, aligned with the crop, with
    ``meta["frame_valid"]`` real steps and ``meta["strong"]`` (see :func:`~audioflex.data.targets.is_strong`; weak clips
    get zeros and ``strong=False``).

    ``defer_frontend=True``: items are ``(wave [T], target, meta)`` with every decision made;
    :meth:`finish` turns the front end's output into the item the workers would have given.

    ``meta`` gains ``frame_shift_ms``, ``frames`` (valid frames after cropping), ``crop_start``,
    ``tokens`` (packed tokens of the clip) and ``shift_key``; ``meta["problems"]`` gains a note for
    a clip shorter than ``min_frames`` analysis windows of the configured front end (1: one
    window; packed models: their patch size), which is padded to that.
    """

    def __init__(
        self,
        waves: WaveformDataset,
        frontend: FrontendConfig,
        *,
        frame_shifts_ms: Sequence[float] | None = None,
        spec_augment: SpecAugment | None = None,
        random_crop_frames: Sequence[int] | None = None,
        max_tokens: int | None = None,
        patch: int = 16,
        frame_targets: FrameTargetSpec | None = None,
        defer_frontend: bool = False,
        min_frames: int = 1,
    ) -> None:
        if frame_shifts_ms and not hasattr(frontend, "frame_shift_ms"):
            raise ValueError(
                f"SpectrogramDataset: random frame shifts need a front end with frame_shift_ms; "
                f"{type(frontend).__name__} has none (drop frame_shifts_ms)"
            )
        if frontend.sample_rate != waves.sample_rate:
            raise ValueError(
                f"SpectrogramDataset: front end expects {frontend.sample_rate} Hz, dataset gives {waves.sample_rate} Hz"
            )
        if random_crop_frames is not None:
            if len(random_crop_frames) != 2 or not 0 < int(random_crop_frames[0]) <= int(random_crop_frames[1]):
                raise ValueError(
                    f"SpectrogramDataset: random_crop_frames must be [min, max] frames with 0 < min <= max, "
                    f"got {list(random_crop_frames)}"
                )
            if getattr(frontend, "target_length", None) is not None:
                raise ValueError(
                    "SpectrogramDataset: random_crop_frames is for native-length models; this front end pads "
                    "every clip to target_length"
                )
        self.waves = waves
        self.frontend_config = frontend
        self.frame_shifts_ms = tuple(float(s) for s in frame_shifts_ms) if frame_shifts_ms else None
        self.spec_augment = spec_augment
        self.random_crop_frames = (
            (int(random_crop_frames[0]), int(random_crop_frames[1])) if random_crop_frames is not None else None
        )
        self.max_tokens = max_tokens
        self.patch = int(patch)
        self.frame_targets = frame_targets
        self.defer_frontend = defer_frontend
        self.min_frames = max(1, int(min_frames))
        self._frontends: dict[float | None, Frontend] = {}

    def __len__(self) -> int:
        return len(self.waves)

    def set_epoch(self, epoch: int) -> None:
        self.waves.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.waves.epoch

    @property
    def pad_value(self) -> float:
        """The front end's value of a padded frame (``FrontendConfig.pad_value``)."""
        return self.frontend_config.pad_value

    @property
    def fixed_frames(self) -> int | None:
        """Frames every spectrogram has (front-end ``target_length``), or None (native length)."""
        return getattr(self.frontend_config, "target_length", None)

    @property
    def num_mel_bins(self) -> int:
        c = self.frontend_config
        return int(getattr(c, "num_mel_bins", None) or getattr(c, "n_mels", 128))

    def frontend(self, shift: float | None) -> Frontend:
        """The (cached) front end at frame shift ``shift`` (None: the configured one)."""
        if shift not in self._frontends:
            cfg = self.frontend_config if shift is None else self.frontend_config.replace(frame_shift_ms=shift)
            if shift is not None and self.fixed_frames is not None:
                base = self.frontend_config.frame_shift_ms
                cfg = cfg.replace(target_length=max(1, round(self.fixed_frames * base / shift)))
            self._frontends[shift] = build_frontend(cfg).eval()
        return self._frontends[shift]

    def frame_shift(self, index: int, epoch: int | None = None) -> float | None:
        """Frame shift (ms) of clip ``index`` in ``epoch`` (None: the front end's own)."""
        if not self.frame_shifts_ms or not self.waves.train:
            return None
        e = self.epoch if epoch is None else epoch
        g = clip_generator(derive_seed(self.waves.seed, SHIFT, e, index))
        return self.frame_shifts_ms[int(torch.randint(0, len(self.frame_shifts_ms), (1,), generator=g))]

    def budget_frames(self) -> int | None:
        """Longest clip (frames) that fits ``max_tokens`` (None: no budget)."""
        if self.max_tokens is None:
            return None
        fgrid = max(1, math.ceil(self.num_mel_bins / self.patch))
        return max(1, self.max_tokens // fgrid) * self.patch

    def crop_plan(self, index: int, frames: int, epoch: int | None = None) -> tuple[int, int] | None:
        """Training crop ``(start, size)`` in frames of clip ``index`` with ``frames`` frames
        (random length crop, then the token-budget crop), or None (kept whole)."""
        if not self.waves.train or self.fixed_frames is not None or frames <= 0:
            return None
        budget = self.budget_frames()
        if self.random_crop_frames is None and (budget is None or frames <= budget):
            return None
        e = self.epoch if epoch is None else epoch
        g = clip_generator(derive_seed(self.waves.seed, FCROP, e, index))
        start, size = 0, frames
        if self.random_crop_frames is not None:
            start, size = sample_crop(frames, self.random_crop_frames, generator=g, integer=True)
        if budget is not None and size > budget:
            start += int(torch.randint(0, size - budget + 1, (1,), generator=g))
            size = budget
        return int(start), int(size)

    def _planned_frames(self, fe: Frontend, index: int, record: ClipRecord | None) -> int | None:
        secs = self.waves.planned_seconds(record, index) if record is not None else None
        if secs is None:
            return None
        return fe.num_frames(max(1, int(secs * self.waves.sample_rate)))

    def token_counts(self, epoch: int, patch: int | None = None) -> list[int]:
        """Tokens of each clip in ``epoch`` (from durations; the budget sampler plans with these).

        Clips of unknown duration count as the cap (or 10 s without a cap).
        """
        patch = self.patch if patch is None else patch
        sr = self.waves.sample_rate
        n_mels = self.num_mel_bins
        out = []
        for i, r in enumerate(self.waves.records):
            secs = self.waves.planned_seconds(r, i, epoch) or 10.0
            fe = self.frontend(self.frame_shift(i, epoch))
            frames = fe.num_frames(max(1, int(secs * sr)))
            fixed = getattr(fe.config, "target_length", None)
            if fixed is None:
                plan = self.crop_plan(i, frames, epoch)
                frames = plan[1] if plan is not None else frames
            out.append(num_tokens(n_mels, fixed if fixed is not None else frames, patch))
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]] | BadClip:
        item = self.waves[index]
        if isinstance(item, BadClip):
            return item
        return self.process(item, index, self.waves.records[index])

    def process(
        self, item: tuple[torch.Tensor, torch.Tensor, dict[str, Any]], index: int, record: ClipRecord | None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """A :class:`WaveformDataset` item -> the training item (spectrogram, or the waveform with
        ``defer_frontend``); ``index`` seeds the clip's draws, ``record`` gives its events."""
        wave, target, meta = item
        short = self.frontend_config.too_short(int(wave.shape[0]), self.min_frames)
        if short:
            meta = {**meta, "problems": [*meta.get("problems", []), short]}
        shift = self.frame_shift(index)
        fe = self.frontend(shift)
        fixed = getattr(fe.config, "target_length", None)
        n = fe.num_frames(wave.shape[0])
        if fixed is not None:
            n = min(n, fixed)
        planned = self._planned_frames(fe, index, record) if fixed is None else None
        plan = self.crop_plan(index, planned if planned is not None else n)
        start, size = (0, n) if plan is None else (min(plan[0], max(0, n - 1)), plan[1])
        size = max(1, min(size, n - start))
        real_shift = float(getattr(fe.config, "frame_shift_ms", 0.0)) or None
        meta = {
            **meta,
            "frame_shift_ms": real_shift,
            "shift_key": shift,
            "frames": size,
            "crop_start": start,
            "tokens": num_tokens(self.num_mel_bins, fixed if fixed is not None else size, self.patch),
        }
        if self.frame_targets is not None:
            hop_s = fe.config.hop_s
            offset_s = meta["offset_s"] + meta["crop_start"] * hop_s
            meta.update(clip_frame_targets(self.frame_targets, with_overlay(record, meta), size, offset_s, hop_s))
        if self.defer_frontend:
            return wave, target, meta
        with torch.no_grad():
            spec, _ = fe(wave.unsqueeze(0))
        return self.finish(spec[0], target, meta)

    def finish(
        self, spec: torch.Tensor, target: torch.Tensor, meta: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """One clip's front-end output ``spec [F, T']`` -> ``(spec [F, T], target, meta)``: the
        planned crop (native length) or the whole padded grid (fixed), then SpecAugment."""
        n, start = int(meta["frames"]), int(meta["crop_start"])
        if self.fixed_frames is None:
            spec = spec[:, start : start + n]
        if self.spec_augment is not None and self.waves.train:
            g = clip_generator(self.waves.item_seed(int(meta["index"]), SPEC))
            spec = self.spec_augment(
                spec.unsqueeze(0),
                torch.tensor([min(n, spec.shape[-1])]),
                frame_shift_ms=meta["frame_shift_ms"] or self.spec_augment.frame_shift_ms,
                generator=g,
            )[0]
        return spec, target, {**meta, "frames": min(n, spec.shape[-1])}


def with_overlay(record: ClipRecord | None, meta: dict[str, Any]) -> ClipRecord | None:
    """``record`` with the events of an overlaid excerpt (``meta["overlay_events"]``, see
    :class:`~audioflex.data.datasets.waveform.WaveformDataset`) added to its events and labels."""
    extra = tuple(meta.get("overlay_events", ()))
    if record is None or not extra:
        return record
    labels = tuple(dict.fromkeys((*record.labels, *(e.label for e in extra))))
    return dataclasses.replace(record, labels=labels, events=(*record.events, *extra))

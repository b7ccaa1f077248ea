"""Training datasets: waveform + target per clip, front end in the DataLoader workers, collators.

Flow (in DataLoader workers, on CPU)::

    ClipRecord --WaveformDataset--> (wave [T], target [C], meta)   crop/cap policy, gain
               --SpectrogramDataset--> (spec [F, T'], target, meta) per-clip frame shift, random
                                                                    frame crop, frame targets,
                                                                    front end, SpecAugment
               --TrainCollator--> Batch(inputs = [B, F, T] tensor or PackedBatch, targets [B, C])

With the front end on the training device (``SpectrogramDataset(defer_frontend=True)``) the
workers stop before the front end: every decision (shift, crop, tokens, frame targets) is still
made there, the collator returns a :class:`Batch` holding the waveforms, and
:class:`DeviceFrontend` runs the front ends batched per frame shift on the device and finishes
the batch exactly as the workers would have. Shard streams (:class:`StreamingBatches`) build
batches on the fly from a ``(wave, ClipRecord)`` stream with the same per-clip processing.

Every random draw (crop offset, gain, frame shift, masks, mixup) is a function of
``(seed, epoch, clip index)``, so runs are reproducible and a resumed run repeats them exactly.
A clip whose file cannot be read (:class:`~audioflex.audio.io.AudioError`) becomes a
:class:`BadClip` marker; the collator drops it and reports it in ``Batch.bad``. A clip that is
used but suspicious (a truncated file: its part on disk is used; audio shorter than one front-end
window, or one patch with ``min_frames``: padded to it) carries the reasons in
``meta["problems"]``, and the collator lists them in ``Batch.notes``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset

from audioflex.audio.augment import SpecAugment, mixup, random_gain, sample_crop
from audioflex.audio.frontend.base import Frontend, FrontendConfig, build_frontend
from audioflex.audio.io import AudioError, audio_info, load_audio_with_info, truncation_note
from audioflex.data.records import ClipRecord, LabelSet
from audioflex.data.samplers import derive_seed
from audioflex.data.targets import frame_targets_for
from audioflex.packing import PackedBatch, collate_packed, num_tokens, plan_batches

logger = logging.getLogger(__name__)

# stream ids for derive_seed, so the different draws of one clip are independent
_CROP, _SHIFT, _SPEC, _MIX, _FCROP = 1, 2, 3, 4, 5


def _gen(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


@dataclasses.dataclass(frozen=True)
class BadClip:
    """Marker returned for a clip whose audio could not be read (dropped by the collator)."""

    index: int
    path: str
    error: str


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
    ``frame_target_fn(record, offset_s, duration_s)`` is a hook for strong-label (frame)
    targets; its result goes to ``meta["frame_target"]``.

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
        seed: int = 0,
        frame_target_fn: Callable[[ClipRecord, float, float], Any] | None = None,
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
        self.seed = int(seed)
        self.epoch = 0
        self.frame_target_fn = frame_target_fn

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def item_seed(self, index: int, stream: int) -> int:
        """The seed of one random draw of clip ``index`` in this epoch (train) or fixed (eval)."""
        return derive_seed(self.seed, stream, self.epoch if self.train else -1, index)

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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]] | BadClip:
        r = self.records[index]
        g = _gen(self.item_seed(index, _CROP))
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
        g = _gen(self.item_seed(index, _CROP))
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
        if self.train and self.gain_db > 0:
            wave = random_gain(wave, -self.gain_db, self.gain_db, generator=g)
        meta: dict[str, Any] = {
            "index": index,
            "id": r.id,
            "path": str(r.path),
            "offset_s": offset,
            "duration_s": wave.shape[0] / self.sample_rate,
            "seed": self.item_seed(index, _MIX),
            "problems": list(problems or []),
        }
        if self.frame_target_fn is not None:
            meta["frame_target"] = self.frame_target_fn(r, offset, meta["duration_s"])
        return wave, self.encode(r), meta


@dataclasses.dataclass(frozen=True)
class FrameTargetSpec:
    """How strong labels become frame targets for a model's frame-wise output.

    ``step_frames``: front-end frames per output step (HTS-AT: 32 = 0.32 s at 10 ms; ElasticAST:
    the patch size, one step per patch column = 16 frame shifts). ``num_steps``: steps of every
    clip (HTS-AT: 32 over its 1024-frame window) or None (one per column of the clip: ElasticAST).
    ``rule``: ``any`` (a step is active if an event overlaps it) or ``half`` (by >= half a step).
    """

    labels: tuple[str, ...]
    step_frames: int
    num_steps: int | None = None
    rule: str = "any"


def is_strong(record: ClipRecord) -> bool:
    """Whether a clip's frame targets are known: every clip label has events (a clip without
    labels and events is a strongly labelled empty clip); weak-only clips are not strong."""
    return set(record.labels) <= {e.label for e in record.events}


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

    ``frame_targets`` (:class:`FrameTargetSpec`): strong labels (``ClipRecord.events``) become
    ``meta["frame_target"] [S, C]`` at the model's frame hop, aligned with the crop, with
    ``meta["frame_valid"]`` real steps and ``meta["strong"]`` (see :func:`is_strong`; weak clips
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
        """Normalised value of a padded (raw 0) frame, as the front end pads."""
        c = self.frontend_config
        if getattr(c, "normalize", False) and hasattr(c, "norm_mean"):
            return (0.0 - c.norm_mean) / (2 * c.norm_std)
        return 0.0

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
        g = _gen(derive_seed(self.waves.seed, _SHIFT, e, index))
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
        g = _gen(derive_seed(self.waves.seed, _FCROP, e, index))
        start, size = 0, frames
        if self.random_crop_frames is not None:
            start, size = sample_crop(frames, self.random_crop_frames, generator=g, integer=True)
        if budget is not None and size > budget:
            start += int(torch.randint(0, size - budget + 1, (1,), generator=g))
            size = budget
        return int(start), int(size)

    def _planned_frames(self, fe: Frontend, record: ClipRecord | None) -> int | None:
        secs = self.waves.read_seconds(record) if record is not None else None
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
            secs = self.waves.read_seconds(r) or 10.0
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
        planned = self._planned_frames(fe, record) if fixed is None else None
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
            meta.update(self._frame_targets(record, meta, fe.config.hop_s))
        if self.defer_frontend:
            return wave, target, meta
        with torch.no_grad():
            spec, _ = fe(wave.unsqueeze(0))
        return self.finish(spec[0], target, meta)

    def _frame_targets(self, record: ClipRecord | None, meta: dict[str, Any], hop_s: float) -> dict[str, Any]:
        spec = self.frame_targets
        assert spec is not None
        valid = max(1, math.ceil(meta["frames"] / spec.step_frames))
        steps = spec.num_steps if spec.num_steps is not None else valid
        valid = min(valid, steps)
        strong = record is not None and is_strong(record)
        if strong:
            offset = meta["offset_s"] + meta["crop_start"] * hop_s
            target = frame_targets_for(
                record.events, spec.labels, steps, spec.step_frames * hop_s, rule=spec.rule, offset_s=offset
            )
        else:
            target = torch.zeros(steps, len(spec.labels))
        return {"frame_target": target, "frame_valid": valid, "strong": strong}

    def finish(
        self, spec: torch.Tensor, target: torch.Tensor, meta: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """One clip's front-end output ``spec [F, T']`` -> ``(spec [F, T], target, meta)``: the
        planned crop (native length) or the whole padded grid (fixed), then SpecAugment."""
        n, start = int(meta["frames"]), int(meta["crop_start"])
        if self.fixed_frames is None:
            spec = spec[:, start : start + n]
        if self.spec_augment is not None and self.waves.train:
            g = _gen(self.waves.item_seed(int(meta["index"]), _SPEC))
            spec = self.spec_augment(
                spec.unsqueeze(0),
                torch.tensor([min(n, spec.shape[-1])]),
                frame_shift_ms=meta["frame_shift_ms"] or self.spec_augment.frame_shift_ms,
                generator=g,
            )[0]
        return spec, target, {**meta, "frames": min(n, spec.shape[-1])}


@dataclasses.dataclass
class Batch:
    """A training/evaluation batch.

    Attributes:
        inputs: ``[B, F, T]`` spectrograms (fixed-grid models) or a :class:`PackedBatch`; None
            when every clip of the batch was unreadable, or before :class:`DeviceFrontend` ran.
        targets: ``[B, C]`` float (possibly mixed) or ``[B]`` class indices.
        index: dataset index (seed index for streams) of each clip.
        bad: unreadable clips met while building the batch.
        notes: ``(path, reason)`` of clips used with a warning (truncated, too short).
        num_tokens: real tokens (packed) or ``B * T`` frames (fixed).
        frames: ``[B]`` valid spectrogram frames of each clip (int64).
        frame_targets: ``[B, S, C]`` strong-label targets at the model's frame hop (zeros for
            weak clips), or None.
        frame_mask: ``[B, S]`` bool, real steps of ``frame_targets``.
        strong: ``[B]`` bool, clips whose frame targets are known.
        waves: the ``(wave, target, meta)`` items of a batch whose front end runs on the device.
    """

    inputs: torch.Tensor | PackedBatch | None
    targets: torch.Tensor | None
    index: tuple[int, ...]
    bad: tuple[BadClip, ...] = ()
    num_tokens: int = 0
    frames: torch.Tensor | None = None
    frame_targets: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None
    strong: torch.Tensor | None = None
    waves: tuple[Any, ...] | None = None
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def num_clips(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def mv(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return dataclasses.replace(
            self,
            inputs=mv(self.inputs),
            targets=mv(self.targets),
            frames=mv(self.frames),
            frame_targets=mv(self.frame_targets),
            frame_mask=mv(self.frame_mask),
            strong=mv(self.strong),
        )


class TrainCollator:
    """Picklable ``collate_fn``: items of a :class:`SpectrogramDataset` -> :class:`Batch`.

    ``packed=True`` builds a :class:`PackedBatch` (``collate_packed``; training crops clips over
    ``max_tokens``); otherwise spectrograms are padded with ``pad_value`` to the longest and
    stacked ``[B, F, T]``. ``mixup_alpha > 0``: each clip is mixed with probability
    ``mixup_prob`` with a random partner of the batch (λ ~ Beta(α, α); targets mixed; every clip
    keeps its own length, see :func:`audioflex.audio.augment.mixup`), seeded by the clips' seeds.
    Mixup is refused for items with frame targets (a partner mixed in at a random offset has no
    aligned frame targets): strong-label training runs without it.

    ``defer=True`` (front end on the device): items are waveforms; the batch carries them in
    ``Batch.waves`` and :meth:`build` is called later by :class:`DeviceFrontend`.
    """

    def __init__(
        self,
        *,
        packed: bool,
        patch: int = 16,
        max_tokens: int | None = None,
        train: bool = False,
        pad_value: float = 0.0,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        defer: bool = False,
    ) -> None:
        self.packed, self.patch, self.max_tokens, self.train = packed, patch, max_tokens, train
        self.pad_value = pad_value
        self.mixup_alpha, self.mixup_prob = float(mixup_alpha), float(mixup_prob)
        self.defer = defer

    def __call__(self, items: Sequence[Any]) -> Batch:
        bad = tuple(it for it in items if isinstance(it, BadClip))
        good = [it for it in items if not isinstance(it, BadClip)]
        if not good:
            return Batch(None, None, (), bad, 0)
        if self.defer:
            index = tuple(int(it[2]["index"]) for it in good)
            tokens = sum(int(it[2].get("tokens", 0)) for it in good)
            return Batch(None, torch.stack([it[1] for it in good]), index, bad, tokens, waves=tuple(good),
                         notes=_notes([it[2] for it in good]))
        return self.build(good, bad)

    def build(self, good: Sequence[Any], bad: tuple[BadClip, ...] = ()) -> Batch:
        """Spectrogram items (none unreadable) -> :class:`Batch`."""
        specs = [it[0] for it in good]
        targets = torch.stack([it[1] for it in good])
        metas = [it[2] for it in good]
        index = tuple(int(m["index"]) for m in metas)
        has_frames = "frame_target" in metas[0]
        if self.train and self.mixup_alpha > 0 and len(specs) > 1:
            if has_frames:
                raise ValueError("TrainCollator: mixup is not supported with frame (strong-label) targets")
            g = _gen(*[int(m["seed"]) for m in metas])
            if not targets.is_floating_point():
                raise ValueError("TrainCollator: mixup needs multi_hot targets (WaveformDataset(target='multi_hot'))")
            mixed, mixed_t, _, _ = mixup(specs, targets, alpha=self.mixup_alpha, generator=g)
            use = torch.rand(len(specs), generator=g) < self.mixup_prob
            specs = [m if bool(u) else s for s, m, u in zip(specs, mixed, use)]
            targets = torch.where(use.unsqueeze(1), mixed_t, targets)
        frames = torch.tensor([int(m["frames"]) for m in metas], dtype=torch.long)
        extra: dict[str, Any] = {"frames": frames, "notes": _notes(metas)}
        if has_frames:
            extra.update(_stack_frame_targets(metas))
        if self.packed:
            shifts = [m.get("frame_shift_ms") for m in metas]
            g = _gen(*[int(m["seed"]) for m in metas], 7) if self.train else None
            pb = collate_packed(
                specs,
                patch=self.patch,
                targets=targets,
                index=index,
                max_tokens=self.max_tokens,
                train=self.train,
                pad_value=self.pad_value,
                frame_shift_ms=shifts if all(s is not None for s in shifts) else None,
                generator=g,
            )
            if has_frames:
                cols = [gs[1] for gs in pb.grid_sizes]
                if [int(m["frame_valid"]) for m in metas] != cols:
                    raise RuntimeError(
                        "TrainCollator: frame targets do not match the packed columns (a clip was cropped in the "
                        "collator); give SpectrogramDataset the same max_tokens"
                    )
            return Batch(pb, targets, index, bad, pb.num_tokens, **extra)
        t_max = max(s.shape[-1] for s in specs)
        x = torch.stack([F.pad(s, (0, t_max - s.shape[-1]), value=self.pad_value) for s in specs])
        return Batch(x, targets, index, bad, int(x.shape[0] * x.shape[-1]), **extra)


def _notes(metas: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(m.get("path", m.get("id", "?"))), p) for m in metas for p in m.get("problems", ()))


def _stack_frame_targets(metas: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per-clip ``frame_target [S_i, C]`` -> ``[B, S_max, C]`` (zero padded) + mask + strong."""
    ts = [m["frame_target"] for m in metas]
    s_max = max(t.shape[0] for t in ts)
    out = torch.stack([F.pad(t, (0, 0, 0, s_max - t.shape[0])) for t in ts])
    valid = torch.tensor([int(m["frame_valid"]) for m in metas])
    mask = torch.arange(s_max)[None, :] < valid[:, None]
    strong = torch.tensor([bool(m["strong"]) for m in metas])
    return {"frame_targets": out, "frame_mask": mask, "strong": strong}


class DeviceFrontend:
    """Front end on the training device for batches built with ``TrainCollator(defer=True)``.

    Waveforms are grouped by their frame shift, zero-padded and run through that shift's front end
    in one call on ``device`` (with per-clip lengths, so each clip is computed as if alone), then
    each clip is finished (:meth:`SpectrogramDataset.finish`: crop, SpecAugment) and the batch
    built (:meth:`TrainCollator.build`: mixup, packing or stacking) as the workers would have.
    """

    def __init__(self, dataset: SpectrogramDataset, collator: TrainCollator, device: torch.device | str) -> None:
        self.dataset, self.collator, self.device = dataset, collator, torch.device(device)
        self._frontends: dict[float | None, Frontend] = {}

    def _frontend(self, shift: float | None) -> Frontend:
        if shift not in self._frontends:
            self._frontends[shift] = copy.deepcopy(self.dataset.frontend(shift)).to(self.device).eval()
        return self._frontends[shift]

    @torch.no_grad()
    def __call__(self, batch: Batch) -> Batch:
        """A deferred batch -> the finished :class:`Batch` (tensors on ``device``); other batches
        are returned unchanged."""
        if batch.waves is None:
            return batch
        items = list(batch.waves)
        groups: dict[float | None, list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault(it[2]["shift_key"], []).append(i)
        done: list[Any] = [None] * len(items)
        for shift, idx in groups.items():
            lens = [int(items[i][0].shape[0]) for i in idx]
            wave = torch.zeros(len(idx), max(lens), device=self.device)
            for k, i in enumerate(idx):
                wave[k, : lens[k]] = items[i][0].to(self.device)
            spec, _ = self._frontend(shift)(wave, torch.tensor(lens, device=self.device))
            for k, i in enumerate(idx):
                done[i] = self.dataset.finish(spec[k], items[i][1].to(self.device), items[i][2])
        return self.collator.build(done, batch.bad)


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


# --------------------------------------------------------------------------------- durations


def resolve_durations(
    records: Sequence[ClipRecord], cache: str | Path | None = None
) -> tuple[list[ClipRecord], list[BadClip]]:
    """Fill missing ``duration`` from file headers (``soundfile.info``), with an optional JSON cache.

    The cache maps a path to ``[size, mtime_ns, duration]`` and is reused when the file is
    unchanged (2 M AudioSet headers take minutes to read). Returns ``(usable records, bad)``:
    files whose header cannot be read are left out and returned as :class:`BadClip` (index =
    position in ``records``).
    """
    entries: dict[str, list[float]] = {}
    cache_path = Path(cache) if cache is not None else None
    if cache_path is not None and cache_path.is_file():
        try:
            entries = json.loads(cache_path.read_text())
        except (OSError, json.JSONDecodeError):
            logger.warning("ignoring unreadable duration cache %s", cache_path)
    out, bad, changed = [], [], False
    for i, r in enumerate(records):
        if r.duration is not None:
            out.append(r)
            continue
        key = str(r.path)
        try:
            st = os.stat(r.path)
            hit = entries.get(key)
            if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                dur = float(hit[2])
            else:
                dur = audio_info(r.path).duration
                entries[key] = [st.st_size, st.st_mtime_ns, dur]
                changed = True
            if not dur > 0 or not math.isfinite(dur):
                raise AudioError(f"{r.path}: header gives duration {dur} s; the file is empty or damaged")
        except (AudioError, OSError) as exc:
            logger.warning("skipping unreadable clip: %s", exc)
            bad.append(BadClip(i, key, str(exc)))
            continue
        out.append(dataclasses.replace(r, duration=dur))
    if cache_path is not None and changed:
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(cache_path)
    return out, bad


__all__ = [
    "Batch",
    "BadClip",
    "DeviceFrontend",
    "FrameTargetSpec",
    "SpectrogramDataset",
    "StreamingBatches",
    "TrainCollator",
    "WaveformDataset",
    "is_strong",
    "resolve_durations",
    "stream_key",
]

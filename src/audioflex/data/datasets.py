"""Training datasets: waveform + target per clip, front end in the DataLoader workers, collators.

Flow (all in DataLoader workers, on CPU)::

    ClipRecord --WaveformDataset--> (wave [T], target [C], meta)   crop/cap policy, gain
               --SpectrogramDataset--> (spec [F, T'], target, meta) front end at a per-clip frame
                                                                    shift, SpecAugment
               --TrainCollator--> Batch(inputs = [B, F, T] tensor or PackedBatch, targets [B, C])

Every random draw (crop offset, gain, frame shift, masks, mixup) is a function of
``(seed, epoch, clip index)``, so runs are reproducible and a resumed run repeats them exactly.
A clip whose file cannot be read (:class:`~audioflex.audio.io.AudioError`) becomes a
:class:`BadClip` marker; the collator drops it and reports it in ``Batch.bad``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from audioflex.audio.augment import SpecAugment, mixup, random_gain, sample_crop
from audioflex.audio.frontend.base import Frontend, FrontendConfig, build_frontend
from audioflex.audio.io import AudioError, audio_info, load_audio
from audioflex.data.records import ClipRecord, LabelSet
from audioflex.data.samplers import derive_seed
from audioflex.packing import PackedBatch, collate_packed, num_tokens

logger = logging.getLogger(__name__)

# stream ids for derive_seed, so the different draws of one clip are independent
_CROP, _SHIFT, _SPEC, _MIX = 1, 2, 3, 4


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

    Unreadable files give a :class:`BadClip` (logged, never raised).
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
            wave = load_audio(r.path, self.sample_rate, offset=r.start + offset, duration=length)
        except AudioError as exc:
            logger.warning("skipping unreadable clip: %s", exc)
            return BadClip(index, str(r.path), str(exc))
        if self.window is not None and r.clip_duration is None:
            # duration unknown up front: crop the decoded audio
            n = int(round(self.window * self.sample_rate))
            if wave.shape[0] > n:
                if self.train:
                    start = int(torch.randint(0, wave.shape[0] - n + 1, (1,), generator=g))
                else:
                    start = (wave.shape[0] - n) // 2 if self.eval_crop == "center" else 0
                offset += start / self.sample_rate
                wave = wave[start : start + n]
        if self.train and self.gain_db > 0:
            wave = random_gain(wave, -self.gain_db, self.gain_db, generator=g)
        meta: dict[str, Any] = {
            "index": index,
            "id": r.id,
            "path": str(r.path),
            "offset_s": offset,
            "duration_s": wave.shape[0] / self.sample_rate,
            "seed": self.item_seed(index, _MIX),
        }
        if self.frame_target_fn is not None:
            meta["frame_target"] = self.frame_target_fn(r, offset, meta["duration_s"])
        return wave, self.encode(r), meta


class SpectrogramDataset(Dataset):
    """A :class:`WaveformDataset` through a front end: ``(spec [F, T'], target, meta)``.

    ``frame_shifts_ms`` (training, Kaldi-style front ends): each clip gets a frame shift drawn
    from the list with ``(seed, epoch, index)`` — random resolution, as ElasticAST trains with
    10-40 ms; one front end per shift is built once and reused. Evaluation uses the front end's
    own shift. ``spec_augment`` masks each clip inside its valid frames, with time widths scaled
    to the clip's frame shift. ``meta`` gains ``frame_shift_ms`` and ``frames``.
    """

    def __init__(
        self,
        waves: WaveformDataset,
        frontend: FrontendConfig,
        *,
        frame_shifts_ms: Sequence[float] | None = None,
        spec_augment: SpecAugment | None = None,
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
        self.waves = waves
        self.frontend_config = frontend
        self.frame_shifts_ms = tuple(float(s) for s in frame_shifts_ms) if frame_shifts_ms else None
        self.spec_augment = spec_augment
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

    def token_counts(self, epoch: int, patch: int = 16) -> list[int]:
        """Tokens of each clip in ``epoch`` (from durations; the budget sampler plans with these).

        Clips of unknown duration count as the cap (or 10 s without a cap).
        """
        sr = self.waves.sample_rate
        n_mels = getattr(self.frontend_config, "num_mel_bins", None) or getattr(self.frontend_config, "n_mels", 128)
        out = []
        for i, r in enumerate(self.waves.records):
            secs = self.waves.read_seconds(r) or 10.0
            fe = self.frontend(self.frame_shift(i, epoch))
            frames = fe.num_frames(max(1, int(secs * sr)))
            fixed = getattr(fe.config, "target_length", None)
            out.append(num_tokens(n_mels, fixed if fixed is not None else frames, patch))
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]] | BadClip:
        item = self.waves[index]
        if isinstance(item, BadClip):
            return item
        wave, target, meta = item
        shift = self.frame_shift(index)
        fe = self.frontend(shift)
        with torch.no_grad():
            spec, frames = fe(wave.unsqueeze(0))
        n = int(frames[0])
        spec = spec[0] if self.fixed_frames is not None else spec[0, :, :n]
        real_shift = float(getattr(fe.config, "frame_shift_ms", 0.0)) or None
        if self.spec_augment is not None and self.waves.train:
            g = _gen(self.waves.item_seed(index, _SPEC))
            spec = self.spec_augment(
                spec.unsqueeze(0),
                torch.tensor([min(n, spec.shape[-1])]),
                frame_shift_ms=real_shift or self.spec_augment.frame_shift_ms,
                generator=g,
            )[0]
        meta = {**meta, "frame_shift_ms": real_shift, "frames": min(n, spec.shape[-1])}
        return spec, target, meta


@dataclasses.dataclass
class Batch:
    """A training/evaluation batch.

    Attributes:
        inputs: ``[B, F, T]`` spectrograms (fixed-grid models) or a :class:`PackedBatch`; None
            when every clip of the batch was unreadable.
        targets: ``[B, C]`` float (possibly mixed) or ``[B]`` class indices.
        index: dataset index of each clip.
        bad: unreadable clips met while building the batch.
        num_tokens: real tokens (packed) or ``B * T`` frames (fixed).
    """

    inputs: torch.Tensor | PackedBatch | None
    targets: torch.Tensor | None
    index: tuple[int, ...]
    bad: tuple[BadClip, ...] = ()
    num_tokens: int = 0

    @property
    def num_clips(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        inputs = None if self.inputs is None else self.inputs.to(device, non_blocking=non_blocking)
        targets = None if self.targets is None else self.targets.to(device, non_blocking=non_blocking)
        return dataclasses.replace(self, inputs=inputs, targets=targets)


class TrainCollator:
    """Picklable ``collate_fn``: items of a :class:`SpectrogramDataset` -> :class:`Batch`.

    ``packed=True`` builds a :class:`PackedBatch` (``collate_packed``; training crops clips over
    ``max_tokens``); otherwise spectrograms are padded with ``pad_value`` to the longest and
    stacked ``[B, F, T]``. ``mixup_alpha > 0``: each clip is mixed with probability
    ``mixup_prob`` with a random partner of the batch (λ ~ Beta(α, α); targets mixed; every clip
    keeps its own length, see :func:`audioflex.audio.augment.mixup`), seeded by the clips' seeds.
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
    ) -> None:
        self.packed, self.patch, self.max_tokens, self.train = packed, patch, max_tokens, train
        self.pad_value = pad_value
        self.mixup_alpha, self.mixup_prob = float(mixup_alpha), float(mixup_prob)

    def __call__(self, items: Sequence[Any]) -> Batch:
        bad = tuple(it for it in items if isinstance(it, BadClip))
        good = [it for it in items if not isinstance(it, BadClip)]
        if not good:
            return Batch(None, None, (), bad, 0)
        specs = [it[0] for it in good]
        targets = torch.stack([it[1] for it in good])
        metas = [it[2] for it in good]
        index = tuple(int(m["index"]) for m in metas)
        if self.train and self.mixup_alpha > 0 and len(specs) > 1:
            g = _gen(*[int(m["seed"]) for m in metas])
            if not targets.is_floating_point():
                raise ValueError("TrainCollator: mixup needs multi_hot targets (WaveformDataset(target='multi_hot'))")
            mixed, mixed_t, _, _ = mixup(specs, targets, alpha=self.mixup_alpha, generator=g)
            use = torch.rand(len(specs), generator=g) < self.mixup_prob
            specs = [m if bool(u) else s for s, m, u in zip(specs, mixed, use)]
            targets = torch.where(use.unsqueeze(1), mixed_t, targets)
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
            return Batch(pb, targets, index, bad, pb.num_tokens)
        t_max = max(s.shape[-1] for s in specs)
        x = torch.stack([F.pad(s, (0, t_max - s.shape[-1]), value=self.pad_value) for s in specs])
        return Batch(x, targets, index, bad, int(x.shape[0] * x.shape[-1]))


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
    "SpectrogramDataset",
    "TrainCollator",
    "WaveformDataset",
    "resolve_durations",
]

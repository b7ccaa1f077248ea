"""The data side of a training run: the datasets read and checked (:func:`read_data`), clip
durations resolved, the training dataset and collator, its batches (token-budget batches of an
indexed dataset, :func:`index_loader`, or a shard stream, :func:`stream_loader`) and the
validation loader.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from audioflex.audio.augment import SpecAugment, speed_factors
from audioflex.audio.frontend.base import FrontendConfig
from audioflex.audio.io import AudioError, load_audio
from audioflex.data.datasets import SpectrogramDataset, StreamingBatches, TrainCollator, WaveformDataset
from audioflex.data.durations import resolve_durations
from audioflex.data.inspect import log_summary
from audioflex.data.readers.common import is_audio
from audioflex.data.records import ClipRecord, LabelSet, ReadResult
from audioflex.data.samplers import BudgetBatchSampler, ClassBalancedSampler
from audioflex.data.targets import FrameTargetSpec, is_strong
from audioflex.train.config import AugmentConfig, DataConfig, DataSpec, TrainConfig
from audioflex.train.distributed import DistInfo, barrier
from audioflex.train.runlog import RunLog

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DataPlan:
    """The clips a run trains and validates on.

    Attributes:
        labels: the label vocabulary (of the training set).
        train_records: indexed training clips (empty for a shard stream).
        valid_records: validation clips (empty without ``data.valid``).
        stream: whether training streams WebDataset shards (``data.train.kind: shards``).
        shards: the shard files of a stream.
        multilabel: multi-label (BCE, mAP) rather than single-label (CE, accuracy).
    """

    labels: LabelSet
    train_records: list[ClipRecord]
    valid_records: list[ClipRecord]
    stream: bool
    shards: list[Path]
    multilabel: bool


def _read(spec: DataSpec, cache: dict[tuple[Any, ...], ReadResult], where: str) -> ReadResult:
    from audioflex.data.readers import read_dataset

    if spec.path is None:
        raise ValueError(f"{where}.path is not set: point it at a dataset directory or manifest")
    key = (str(Path(spec.path).resolve()), spec.kind, json.dumps(spec.options, sort_keys=True, default=str))
    if key not in cache:
        cache[key] = read_dataset(spec.path, kind=spec.kind, **spec.options)
        log_summary(cache[key], where)
    return cache[key]


def _select(result: ReadResult, spec: DataSpec, where: str) -> list[ClipRecord]:
    recs = result.select(split=spec.split, folds=spec.folds, exclude_folds=spec.exclude_folds)
    if not recs:
        raise ValueError(
            f"{where}: no clips in {spec.path} for split={spec.split!r} folds={spec.folds} "
            f"exclude_folds={spec.exclude_folds} ({len(result.records)} clips in total; clips per split: "
            f"{ {k or 'none': v for k, v in result.split_counts().items()} }); pick a split/folds that exist"
        )
    return recs


def read_data(cfg: TrainConfig) -> DataPlan:
    """Read ``data.train`` (a dataset or a shard directory) and ``data.valid``; decide multi-label."""
    cache: dict[tuple[Any, ...], ReadResult] = {}
    stream = (cfg.data.train.kind or "").lower() == "shards"
    stream_multilabel: bool | None = None
    shards: list[Path] = []
    if stream:
        from audioflex.data.shards import read_shard_info

        if cfg.data.train.path is None:
            raise ValueError("data.train.path is not set: point it at a directory of shards (audioflex shard)")
        shard_info = read_shard_info(cfg.data.train.path)
        shards = shard_info.shards
        labels = LabelSet(shard_info.labels)
        train_recs: list[ClipRecord] = []
        stream_multilabel = shard_info.multilabel
        if stream_multilabel is None and cfg.data.multilabel is None:
            logger.warning("data.train: %s has no manifest.json; assuming multi-label (BCE)", cfg.data.train.path)
            stream_multilabel = True
    else:
        train_res = _read(cfg.data.train, cache, "data.train")
        labels = train_res.labels
        train_recs = _select(train_res, cfg.data.train, "data.train")
    valid_recs: list[ClipRecord] = []
    if cfg.data.valid is not None and cfg.data.valid.path is not None:
        if (cfg.data.valid.kind or "").lower() == "shards":
            raise ValueError("data.valid: validation reads a regular dataset, not shards (kind: shards)")
        valid_recs = _select(_read(cfg.data.valid, cache, "data.valid"), cfg.data.valid, "data.valid")
    if cfg.data.multilabel is not None:
        multilabel = cfg.data.multilabel
    elif stream:
        multilabel = bool(stream_multilabel)
    else:
        multilabel = any(len(r.labels) != 1 for r in train_recs)
    return DataPlan(labels, train_recs, valid_recs, stream, shards, multilabel)


def loss_kind_for(cfg: TrainConfig, plan: DataPlan) -> str:
    """``bce`` or ``ce`` (``loss: auto`` follows ``plan.multilabel``); errors when CE can't be used."""
    kind = cfg.loss if cfg.loss != "auto" else ("bce" if plan.multilabel else "ce")
    if kind not in ("bce", "ce"):
        raise ValueError(f"loss: use auto, bce or ce (got {cfg.loss!r})")
    if kind == "ce" and any(len(r.labels) != 1 for r in plan.train_records):
        bad = next(r for r in plan.train_records if len(r.labels) != 1)
        raise ValueError(f"loss=ce needs exactly one label per clip; {bad.path} has {list(bad.labels)}")
    return kind


def check_data_options(d: DataConfig, packed: bool, model_name: str) -> None:
    """Raise ``ValueError`` naming the first bad ``data.*`` option."""
    if d.frontend_device not in ("workers", "device"):
        raise ValueError(f"data.frontend_device: use 'workers' or 'device' (got {d.frontend_device!r})")
    if d.stream_resume not in ("skip", "restart"):
        raise ValueError(f"data.stream_resume: use 'skip' or 'restart' (got {d.stream_resume!r})")
    if d.random_crop_frames is not None:
        rc = d.random_crop_frames
        if not packed:
            raise ValueError(
                "data.random_crop_frames: random-length crops are for native-length (packed) models; "
                f"{model_name} takes a fixed grid (use data.clip_seconds)"
            )
        if len(rc) != 2 or not all(isinstance(v, int) for v in rc) or not 0 < rc[0] <= rc[1]:
            raise ValueError(f"data.random_crop_frames: expected [min, max] frames with 0 < min <= max, got {rc}")
    if d.shuffle_buffer < 1 or d.pack_buffer < 1:
        raise ValueError("data.shuffle_buffer and data.pack_buffer must be >= 1")


def resolve_plan_durations(plan: DataPlan, run_dir: Path, info: DistInfo, runlog: RunLog) -> None:
    """Clip durations of the plan's records (rank 0 measures and caches them in
    ``durations.json``, the other ranks read the cache); unreadable clips go to ``runlog``."""
    cache_path = run_dir / "durations.json"
    if info.is_main:
        unknown = sum(r.duration is None for r in (*plan.train_records, *plan.valid_records))
        if unknown:
            logger.info(
                "reading the length of %d clip(s) from their file headers (once; cached in %s)", unknown, cache_path
            )
        plan.train_records, bad = resolve_durations(plan.train_records, cache_path)
        runlog.report_bad(bad)
        plan.valid_records, bad = resolve_durations(plan.valid_records, cache_path)
        runlog.report_bad(bad)
    barrier(info)
    if not info.is_main:
        plan.train_records, _ = resolve_durations(plan.train_records, cache_path if cache_path.is_file() else None)


def clip_windows(cfg: TrainConfig, frontend: FrontendConfig, packed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The waveform windows of training and validation clips: ``max_seconds`` crops for packed
    models, ``clip_seconds`` (default: the front end's fixed input span) for fixed-grid ones."""
    if packed:
        return {"max_seconds": cfg.data.max_seconds}, {"max_seconds": cfg.data.eval_max_seconds}
    clip = cfg.data.clip_seconds
    fixed_frames = getattr(frontend, "target_length", None)
    if clip is None and fixed_frames is not None and hasattr(frontend, "hop_length"):
        clip = ((fixed_frames - 1) * frontend.hop_length + frontend.win_length) / frontend.sample_rate
    clip = clip if clip is not None else cfg.data.max_seconds
    return {"clip_seconds": clip}, {"clip_seconds": clip}


def spec_augment(aug: AugmentConfig, frontend: FrontendConfig) -> SpecAugment | None:
    """SpecAugment of ``augment.*`` (None without frequency or time masks), filling masks with
    the front end's ``mask_value``."""
    if aug.freq_mask <= 0 and aug.time_mask <= 0:
        return None
    return SpecAugment(
        aug.freq_mask,
        aug.time_mask,
        num_freq_masks=aug.num_freq_masks,
        num_time_masks=aug.num_time_masks,
        frame_shift_ms=10.0,
        mask_value=frontend.mask_value,
    )


def background_recordings(cfg: TrainConfig, sample_rate: int) -> list[torch.Tensor]:
    """The noise recordings of ``augment.background_noise`` (mono ``[N]`` at ``sample_rate``; ``[]`` when
    unset). ``auto`` is the ``_background_noise_`` folder beside the training clips (Speech Commands)."""
    aug = cfg.augment
    if not aug.background_noise:
        return []
    key = "augment.background_noise"
    if aug.background_noise == "auto":
        root = Path(cfg.data.train.path or ".")
        folder = (root if root.is_dir() else root.parent) / "_background_noise_"
    else:
        folder = Path(aug.background_noise)
    if not folder.is_dir():
        raise ValueError(f"{key}: {folder} is not a folder (give a folder of noise recordings, or 'auto' for the "
                         "_background_noise_ folder of a Speech Commands dataset)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_audio(p.name))
    if not files:
        raise ValueError(f"{key}: no audio files in {folder}")
    noises = []
    for f in files:
        try:
            noises.append(load_audio(f, sample_rate).reshape(-1).float())
        except AudioError as e:
            raise ValueError(f"{key}: cannot read {f} ({e}); remove it or fix it") from None
    logger.info("background noise: %d recording(s) from %s (%.0f s), p=%g, SNR %g-%g dB", len(noises), folder,
                sum(n.numel() for n in noises) / sample_rate, aug.background_prob, *aug.background_snr_db)
    return noises


def speed_range(cfg: TrainConfig) -> tuple[float, ...]:
    """``augment.speed`` checked: ``(low, high)`` speed factors, or ``()`` when off."""
    return speed_factors(cfg.augment.speed, "augment.speed") or ()


def check_overlay(aug: AugmentConfig, plan: DataPlan, frame_targets: FrameTargetSpec | None) -> None:
    """Raise ``ValueError`` naming ``augment.overlay_*`` when the event overlay can't run as asked."""
    if aug.overlay_prob == 0:
        return
    if not 0 < aug.overlay_prob <= 1:
        raise ValueError(f"augment.overlay_prob must be in [0, 1], got {aug.overlay_prob}")
    snr = aug.overlay_snr_db
    if len(snr) != 2 or not snr[0] <= snr[1]:
        raise ValueError(f"augment.overlay_snr_db: expected [low, high] dB with low <= high, got {snr}")
    if frame_targets is None:
        raise ValueError(
            "augment.overlay_prob overlays strongly labelled clips for sound event detection (sed.frame_weight > 0); "
            "for clip labels use augment.mixup_alpha"
        )
    if plan.stream:
        raise ValueError("augment.overlay_prob reads other training clips by index; a shard stream can't (set it to 0)")
    if not any(is_strong(r) for r in plan.train_records):
        raise ValueError("augment.overlay_prob: no training clip has strong labels (events) to overlay; set it to 0")


def train_dataset(
    cfg: TrainConfig, plan: DataPlan, frontend: FrontendConfig, *, packed: bool, patch: int,
    frame_targets: FrameTargetSpec | None,
) -> SpectrogramDataset:
    """The training spectrogram dataset (augmented; front end deferred with ``frontend_device: device``)."""
    aug = cfg.augment
    check_overlay(aug, plan, frame_targets)
    window, _ = clip_windows(cfg, frontend, packed)
    waves = WaveformDataset(
        plan.train_records, plan.labels, sample_rate=frontend.sample_rate, train=True, gain_db=aug.gain_db,
        time_shift_ms=aug.time_shift_ms, background=background_recordings(cfg, frontend.sample_rate),
        background_prob=aug.background_prob if aug.background_noise else 0.0, background_snr_db=aug.background_snr_db,
        speed=speed_range(cfg), overlay_prob=aug.overlay_prob, overlay_snr_db=aug.overlay_snr_db, seed=cfg.seed,
        **window,
    )
    return SpectrogramDataset(
        waves,
        frontend,
        frame_shifts_ms=aug.frame_shifts_ms or None,
        spec_augment=spec_augment(aug, frontend),
        random_crop_frames=cfg.data.random_crop_frames,
        max_tokens=cfg.data.max_tokens if packed else None,
        patch=patch,
        frame_targets=frame_targets,
        defer_frontend=cfg.data.frontend_device == "device",
        min_frames=patch if packed else 1,
    )


def train_collator(cfg: TrainConfig, ds: SpectrogramDataset, *, packed: bool, patch: int) -> TrainCollator:
    """The training collator (mixup; packing for packed models)."""
    aug = cfg.augment
    return TrainCollator(
        packed=packed,
        patch=patch,
        max_tokens=cfg.data.max_tokens if packed else None,
        train=True,
        pad_value=ds.pad_value,
        mixup_alpha=aug.mixup_alpha,
        mixup_prob=aug.mixup_prob,
        defer=cfg.data.frontend_device == "device",
    )


def make_loader(
    ds: SpectrogramDataset, sampler: BudgetBatchSampler, collate: TrainCollator, *, seed: int, num_workers: int,
    device: torch.device,
) -> DataLoader:
    """A DataLoader over the batches of ``sampler`` (seeded worker generator)."""
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        ds,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=g,
    )


def index_loader(
    cfg: TrainConfig, info: DistInfo, ds: SpectrogramDataset, records: list[ClipRecord], collate: TrainCollator,
    *, packed: bool, patch: int,
) -> tuple[BudgetBatchSampler, DataLoader]:
    """Token-budget batches of an indexed dataset, split across ranks (class-balanced with
    ``data.balanced``); returns the sampler and its loader."""
    d = cfg.data
    index_sampler = None
    if d.balanced:
        index_sampler = ClassBalancedSampler.from_labels(
            [r.labels for r in records], num_samples=d.epoch_size, seed=cfg.seed
        )
    counts: Any = (lambda epoch: ds.token_counts(epoch, patch)) if packed else [1] * len(records)
    sampler = BudgetBatchSampler(
        counts,
        d.max_tokens if packed else d.batch_size,
        max_clips=d.max_clips,
        seed=cfg.seed,
        num_replicas=info.world_size,
        rank=info.rank,
        accumulation=cfg.optim.grad_accum,
        drop_last=d.drop_last,
        index_sampler=index_sampler,
    )
    return sampler, make_loader(ds, sampler, collate, seed=cfg.seed, num_workers=d.num_workers, device=info.device)


def stream_loader(
    cfg: TrainConfig, info: DistInfo, shards: list[Path], ds: SpectrogramDataset, collate: TrainCollator,
    *, packed: bool,
) -> tuple[StreamingBatches, DataLoader]:
    """Batches built on the fly from a shard stream (shards split across ranks and workers);
    returns the stream (``set_epoch``) and its loader."""
    from audioflex.data.shards import ShardStream

    d = cfg.data
    if d.balanced:
        raise ValueError("data.balanced: class-balanced sampling needs an indexed dataset, not a shard stream")
    if cfg.max_steps is None:
        raise ValueError("data.train.kind=shards: set max_steps (a stream's batches per epoch are not known)")
    if len(shards) < info.world_size:
        raise ValueError(
            f"data.train: {len(shards)} shard(s) for {info.world_size} ranks; every rank needs its own "
            "shards (write smaller shards with --shard-size)"
        )
    slots = info.world_size * max(1, d.num_workers)
    if len(shards) < slots:
        logger.warning("%d shards for %d ranks x workers: some workers stay idle", len(shards), slots)
    stream = ShardStream(
        shards,
        sample_rate=ds.frontend_config.sample_rate,
        shuffle=True,
        buffer=d.shuffle_buffer,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    batches = StreamingBatches(
        stream,
        ds,
        packed=packed,
        max_tokens=d.max_tokens if packed else None,
        max_clips=d.max_clips,
        batch_size=d.batch_size,
        buffer=d.pack_buffer,
        drop_last=d.drop_last,
    )
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    loader = DataLoader(
        batches, batch_size=None, collate_fn=collate, num_workers=d.num_workers, pin_memory=False, generator=g
    )
    return batches, loader


def valid_loader(
    cfg: TrainConfig, plan: DataPlan, frontend: FrontendConfig, device: torch.device, *, packed: bool, patch: int,
) -> DataLoader:
    """The validation loader (no augmentation, unshuffled budget batches)."""
    _, window = clip_windows(cfg, frontend, packed)
    waves = WaveformDataset(
        plan.valid_records, plan.labels, sample_rate=frontend.sample_rate, train=False, eval_crop=cfg.data.eval_crop,
        **window,
    )
    ds = SpectrogramDataset(waves, frontend, min_frames=patch if packed else 1)
    counts: Any = ds.token_counts(0, patch) if packed else [1] * len(plan.valid_records)
    budget = cfg.data.max_tokens if packed else (cfg.data.eval_batch_size or cfg.data.batch_size)
    sampler = BudgetBatchSampler(counts, budget, max_clips=cfg.data.max_clips, shuffle=False)
    collate = TrainCollator(packed=packed, patch=patch, train=False, pad_value=ds.pad_value)
    return make_loader(ds, sampler, collate, seed=cfg.seed, num_workers=cfg.data.num_workers, device=device)


__all__ = [
    "DataPlan",
    "check_data_options",
    "check_overlay",
    "clip_windows",
    "index_loader",
    "speed_range",
    "loss_kind_for",
    "make_loader",
    "read_data",
    "resolve_plan_durations",
    "spec_augment",
    "stream_loader",
    "train_collator",
    "train_dataset",
    "valid_loader",
]

"""The training loop: ``train(config) -> TrainResult`` (single process, or DDP under ``torchrun``).

Run directory layout::

    <out_dir>/config.yaml        the effective config
    <out_dir>/metrics.jsonl      one JSON object per log / evaluation
    <out_dir>/bad_files.txt      unreadable clips met (path <TAB> error), appended; clips used with a
                                 warning (truncated, too short) as path <TAB> "warning: ...", once each
    <out_dir>/last/              checkpoint + train_state.{safetensors,json} (resume from here)
    <out_dir>/best/              checkpoint with the best validation metric

A run that starts or resumes in a directory removes the checkpoint temporaries a killed run left
(``.last.tmp-*``, ``.best.tmp-*``: partial checkpoints, never read), and a resumed run drops the
rows of ``metrics.jsonl`` past its checkpoint's step (rewritten atomically), so the steps it
repeats are not counted twice.

Training data comes from a dataset read by ``read_dataset`` (indexed: token-budget batches planned
per epoch by ``BudgetBatchSampler``, exact mid-epoch resume) or from WebDataset shards
(``data.train.kind: shards``: streamed, shards split across ranks and DataLoader workers, batches
built on the fly by ``StreamingBatches``; a resumed run replays the interrupted epoch's stream and
skips the batches already trained on, or restarts the epoch with ``data.stream_resume: restart``).
Under DDP a stream's epoch ends for every rank as soon as one rank's shards run out (ranks hold
different shards, so their batch counts differ; the rest of the longer streams is dropped).

Loss normalisation: every optimiser step sums per-clip losses over all micro-batches of all
ranks and divides by the global number of clips (an all-reduce of the clip count before the
backward passes), scaled by the world size to undo DDP's gradient averaging. So packed batches
with different clip counts per rank give exactly the gradient of one process holding the whole
global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from audioflex.audio.augment import SpecAugment
from audioflex.audio.frontend.base import FrontendConfig
from audioflex.checkpoints.io import describe_mismatch, load_state_checked, read_meta, save_checkpoint
from audioflex.data.datasets import (
    BadClip,
    Batch,
    DeviceFrontend,
    SpectrogramDataset,
    StreamingBatches,
    TrainCollator,
    WaveformDataset,
)
from audioflex.data.durations import resolve_durations
from audioflex.data.records import ClipRecord, LabelSet, ReadResult
from audioflex.data.samplers import BudgetBatchSampler, ClassBalancedSampler, derive_seed
from audioflex.data.targets import FrameTargetSpec
from audioflex.evaluate.metrics import clip_metrics
from audioflex.models.contract import contract_of
from audioflex.models.outputs import AudioOutput
from audioflex.models.registry import create_model, default_frontend, get_spec
from audioflex.train import state as st
from audioflex.train.config import DataSpec, TrainConfig, check_model_kwargs, load_config
from audioflex.train.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from audioflex.train.losses import per_clip_loss, sed_per_clip_loss
from audioflex.train.optim import build_optimizer, lr_factor, set_lr

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What a finished run left behind.

    Attributes:
        run_dir: the run directory.
        steps: optimiser steps done (in total, including a resumed part).
        metric_name: the validation metric (``accuracy`` single-label, ``mAP`` multi-label).
        best_metric, best_step: best validation value and its step (None without validation).
        last_metrics: the last validation metrics.
        last_checkpoint, best_checkpoint: checkpoint directories (best None without validation).
        metrics_path: ``metrics.jsonl``.
        bad_files: number of unreadable clips met (listed in ``bad_files.txt``).
    """

    run_dir: Path
    steps: int
    metric_name: str
    best_metric: float | None
    best_step: int | None
    last_metrics: dict[str, float]
    last_checkpoint: Path
    best_checkpoint: Path | None
    metrics_path: Path
    bad_files: int


# ------------------------------------------------------------------------------------- data


def _read(spec: DataSpec, cache: dict[tuple[Any, ...], ReadResult], where: str) -> ReadResult:
    from audioflex.data.readers import read_dataset

    if spec.path is None:
        raise ValueError(f"{where}.path is not set: point it at a dataset directory or manifest")
    key = (str(Path(spec.path).resolve()), spec.kind, json.dumps(spec.options, sort_keys=True, default=str))
    if key not in cache:
        from audioflex.data.inspect import log_summary

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


def _metrics(scores: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> dict[str, float]:
    """Validation metrics (:func:`~audioflex.evaluate.metrics.clip_metrics`) with a ``primary`` entry."""
    out = clip_metrics(scores.numpy(), targets.numpy(), multilabel)
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float))}


# ----------------------------------------------------------------------------------- helpers


def _swap_dir(src: Path, target: Path) -> None:
    """Move the complete directory ``src`` to ``target``, replacing it (crash-safe order)."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(src, target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _find_resume(path: Path) -> tuple[Path, Path]:
    """(checkpoint dir with train state, run dir) from a run dir or a ``last/`` dir."""
    if (path / st.STATE_JSON).is_file():
        return path, path.parent
    for cand in (path / "last", path / ".last.old"):
        if (cand / st.STATE_JSON).is_file():
            return cand, path
    raise FileNotFoundError(f"resume={path}: no last/ checkpoint with {st.STATE_JSON} found (nothing to resume)")


class _Trainer:
    def __init__(self, cfg: TrainConfig, info: DistInfo) -> None:
        self.cfg, self.info = cfg, info
        self.device = info.device
        self.bad_count = 0
        self.resume_from: Path | None = None
        if cfg.resume:
            self.resume_from, run_dir = _find_resume(Path(cfg.resume))
            self.run_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir
        else:
            name = cfg.model.name or "model"
            self.run_dir = Path(cfg.out_dir) if cfg.out_dir else Path("runs") / name
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for d in st.remove_temporaries(self.run_dir, keep=self.resume_from):
                logger.info("removed %s (a partial checkpoint of a killed run)", d)
            cfg.to_yaml(self.run_dir / "config.yaml")
        barrier(info)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.bad_path = self.run_dir / "bad_files.txt"
        self.noted: set[str] = set()  # "path\twarning: ..." lines already in bad_files.txt
        if self.bad_path.is_file():
            self.noted = {ln for ln in self.bad_path.read_text().splitlines() if "\twarning: " in ln}
        self.tb = None
        if info.is_main and cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception:  # noqa: BLE001 (tensorboard missing or broken: optional)
                self.tb = None

    # ---------------------------------------------------------------- logging
    def log(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            prefix = record.get("split", "train")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, record.get("step", 0))

    def report_bad(self, bad: Iterable[BadClip]) -> None:
        bad = list(bad)
        if not bad:
            return
        self.bad_count += len(bad)
        lines = "".join(f"{b.path}\t{' '.join(b.error.split())}\n" for b in bad)
        with open(self.bad_path, "a") as fh:  # one append per batch (O_APPEND: ranks don't interleave lines)
            fh.write(lines)
        logger.warning("skipped %d unreadable clip(s) (%d so far, see %s)", len(bad), self.bad_count, self.bad_path)

    def report_notes(self, notes: Iterable[tuple[str, str]]) -> None:
        """Clips used with a warning (truncated, too short): logged and listed once per run dir."""
        new = []
        for path, reason in notes:
            line = f"{path}\twarning: {' '.join(reason.split())}"
            if line not in self.noted:
                self.noted.add(line)
                new.append(line)
                logger.warning("%s: %s", path, reason)
        if new:
            with open(self.bad_path, "a") as fh:
                fh.write("".join(line + "\n" for line in new))

    # ---------------------------------------------------------------- set-up
    def build(self) -> None:
        cfg, info = self.cfg, self.info
        cache: dict[tuple[Any, ...], ReadResult] = {}
        self.stream = (cfg.data.train.kind or "").lower() == "shards"
        stream_multilabel: bool | None = None
        if self.stream:
            from audioflex.data.shards import read_shard_info

            if cfg.data.train.path is None:
                raise ValueError("data.train.path is not set: point it at a directory of shards (audioflex shard)")
            shard_info = read_shard_info(cfg.data.train.path)
            self.shards = shard_info.shards
            self.labels: LabelSet = LabelSet(shard_info.labels)
            train_recs: list[ClipRecord] = []
            stream_multilabel = shard_info.multilabel
            if stream_multilabel is None and cfg.data.multilabel is None:
                logger.warning("data.train: %s has no manifest.json; assuming multi-label (BCE)", cfg.data.train.path)
                stream_multilabel = True
        else:
            train_res = _read(cfg.data.train, cache, "data.train")
            self.labels = train_res.labels
            train_recs = _select(train_res, cfg.data.train, "data.train")
        valid_recs: list[ClipRecord] = []
        if cfg.data.valid is not None and cfg.data.valid.path is not None:
            if (cfg.data.valid.kind or "").lower() == "shards":
                raise ValueError("data.valid: validation reads a regular dataset, not shards (kind: shards)")
            valid_recs = _select(_read(cfg.data.valid, cache, "data.valid"), cfg.data.valid, "data.valid")
        if cfg.data.multilabel is not None:
            self.multilabel = cfg.data.multilabel
        elif self.stream:
            self.multilabel = bool(stream_multilabel)
        else:
            self.multilabel = any(len(r.labels) != 1 for r in train_recs)
        self.loss_kind = cfg.loss if cfg.loss != "auto" else ("bce" if self.multilabel else "ce")
        if self.loss_kind not in ("bce", "ce"):
            raise ValueError(f"loss: use auto, bce or ce (got {cfg.loss!r})")
        if self.loss_kind == "ce" and any(len(r.labels) != 1 for r in train_recs):
            bad = next(r for r in train_recs if len(r.labels) != 1)
            raise ValueError(f"loss=ce needs exactly one label per clip; {bad.path} has {list(bad.labels)}")
        self.metric_name = "mAP" if self.multilabel else "accuracy"

        # model
        self.model_name, model_kwargs, init_state = self._model_source()
        fe = default_frontend(self.model_name)
        if fe is None:
            raise ValueError(f"model {self.model_name!r} registers no front end; it cannot be trained from audio")
        self.frontend_cfg: FrontendConfig = fe.replace(**cfg.frontend) if cfg.frontend else fe
        params = inspect.signature(get_spec(self.model_name).builder).parameters
        kwargs = {**model_kwargs, "num_classes": len(self.labels)}
        n_mels = getattr(self.frontend_cfg, "num_mel_bins", None)
        if n_mels is not None and "num_mel_bins" in params:
            kwargs["num_mel_bins"] = n_mels
        target_len = getattr(self.frontend_cfg, "target_length", None)
        if target_len is not None and "max_length" in params and "max_length" not in model_kwargs:
            kwargs["max_length"] = target_len
        torch.manual_seed(cfg.seed)
        model = create_model(self.model_name, **kwargs)
        if init_state is not None:
            self._load_init(model, init_state)
        self.contract = contract_of(model)
        self.packed = self.contract.packed
        # token columns of packed models; grid models keep the datasets' default (only a token count)
        self.patch = self.contract.column_frames if self.packed else 16
        frame_spec = self._frame_target_spec()
        self.model = model.to(self.device)
        # per-rank stream for model-internal randomness (token dropping, drop-path)
        torch.manual_seed(derive_seed(cfg.seed, 0x70CE, info.rank))

        # data
        self._check_data_options()
        cache_path = self.run_dir / "durations.json"
        if info.is_main:
            train_recs, bad = resolve_durations(train_recs, cache_path)
            self.report_bad(bad)
            valid_recs, bad = resolve_durations(valid_recs, cache_path)
            self.report_bad(bad)
        barrier(info)
        if not info.is_main:
            train_recs, _ = resolve_durations(train_recs, cache_path if cache_path.is_file() else None)
        if not train_recs and not self.stream:
            raise ValueError(f"data.train: none of the clips of {cfg.data.train.path} is readable")
        sr = self.frontend_cfg.sample_rate
        fixed_frames = getattr(self.frontend_cfg, "target_length", None)
        if self.packed:
            window = {"max_seconds": cfg.data.max_seconds}
            eval_window = {"max_seconds": cfg.data.eval_max_seconds}
        else:
            clip = cfg.data.clip_seconds
            if clip is None and fixed_frames is not None and hasattr(self.frontend_cfg, "hop_length"):
                c = self.frontend_cfg
                clip = ((fixed_frames - 1) * c.hop_length + c.win_length) / sr
            clip = clip if clip is not None else cfg.data.max_seconds
            window = eval_window = {"clip_seconds": clip}
        aug = cfg.augment
        spec_aug = None
        if aug.freq_mask > 0 or aug.time_mask > 0:
            spec_aug = SpecAugment(
                aug.freq_mask,
                aug.time_mask,
                num_freq_masks=aug.num_freq_masks,
                num_time_masks=aug.num_time_masks,
                frame_shift_ms=10.0,
            )
        train_waves = WaveformDataset(
            train_recs, self.labels, sample_rate=sr, train=True, gain_db=aug.gain_db, seed=cfg.seed, **window
        )
        on_device = cfg.data.frontend_device == "device"
        self.train_ds = SpectrogramDataset(
            train_waves,
            self.frontend_cfg,
            frame_shifts_ms=aug.frame_shifts_ms or None,
            spec_augment=spec_aug,
            random_crop_frames=cfg.data.random_crop_frames,
            max_tokens=cfg.data.max_tokens if self.packed else None,
            patch=self.patch,
            frame_targets=frame_spec,
            defer_frontend=on_device,
            min_frames=self.patch if self.packed else 1,
        )
        collate = TrainCollator(
            packed=self.packed,
            patch=self.patch,
            max_tokens=cfg.data.max_tokens if self.packed else None,
            train=True,
            pad_value=self.train_ds.pad_value,
            mixup_alpha=aug.mixup_alpha,
            mixup_prob=aug.mixup_prob,
            defer=on_device,
        )
        self.device_frontend = DeviceFrontend(self.train_ds, collate, self.device) if on_device else None
        if self.stream:
            self._build_stream(collate)
        else:
            self._build_sampler(train_recs, collate)
        self.valid_loader = None
        if valid_recs and info.is_main:
            vw = WaveformDataset(
                valid_recs, self.labels, sample_rate=sr, train=False, eval_crop=cfg.data.eval_crop, **eval_window
            )
            vds = SpectrogramDataset(vw, self.frontend_cfg, min_frames=self.patch if self.packed else 1)
            vcounts: Any = vds.token_counts(0, self.patch) if self.packed else [1] * len(valid_recs)
            vbudget = cfg.data.max_tokens if self.packed else (cfg.data.eval_batch_size or cfg.data.batch_size)
            vsampler = BudgetBatchSampler(vcounts, vbudget, max_clips=cfg.data.max_clips, shuffle=False)
            vcollate = TrainCollator(packed=self.packed, patch=self.patch, train=False, pad_value=vds.pad_value)
            self.valid_loader = self._loader(vds, vsampler, vcollate)
        self._build_optimisation()

    def _build_sampler(self, train_recs: list[ClipRecord], collate: TrainCollator) -> None:
        cfg, info = self.cfg, self.info
        index_sampler = None
        if cfg.data.balanced:
            index_sampler = ClassBalancedSampler.from_labels(
                [r.labels for r in train_recs], num_samples=cfg.data.epoch_size, seed=cfg.seed
            )
        ds, patch = self.train_ds, self.patch
        counts: Any = (lambda epoch: ds.token_counts(epoch, patch)) if self.packed else [1] * len(train_recs)
        budget = cfg.data.max_tokens if self.packed else cfg.data.batch_size
        self.sampler = BudgetBatchSampler(
            counts,
            budget,
            max_clips=cfg.data.max_clips,
            seed=cfg.seed,
            num_replicas=info.world_size,
            rank=info.rank,
            accumulation=cfg.optim.grad_accum,
            drop_last=cfg.data.drop_last,
            index_sampler=index_sampler,
        )
        self.train_loader = self._loader(self.train_ds, self.sampler, collate)

    def _build_stream(self, collate: TrainCollator) -> None:
        from audioflex.data.shards import ShardStream

        cfg, info = self.cfg, self.info
        if cfg.data.balanced:
            raise ValueError("data.balanced: class-balanced sampling needs an indexed dataset, not a shard stream")
        if cfg.max_steps is None:
            raise ValueError("data.train.kind=shards: set max_steps (a stream's batches per epoch are not known)")
        if len(self.shards) < info.world_size:
            raise ValueError(
                f"data.train: {len(self.shards)} shard(s) for {info.world_size} ranks; every rank needs its own "
                "shards (write smaller shards with --shard-size)"
            )
        slots = info.world_size * max(1, cfg.data.num_workers)
        if len(self.shards) < slots:
            logger.warning("%d shards for %d ranks x workers: some workers stay idle", len(self.shards), slots)
        stream = ShardStream(
            self.shards,
            sample_rate=self.frontend_cfg.sample_rate,
            shuffle=True,
            buffer=cfg.data.shuffle_buffer,
            seed=cfg.seed,
            rank=info.rank,
            world_size=info.world_size,
        )
        self.train_stream = StreamingBatches(
            stream,
            self.train_ds,
            packed=self.packed,
            max_tokens=cfg.data.max_tokens if self.packed else None,
            max_clips=cfg.data.max_clips,
            batch_size=cfg.data.batch_size,
            buffer=cfg.data.pack_buffer,
            drop_last=cfg.data.drop_last,
        )
        self.sampler = None
        g = torch.Generator()
        g.manual_seed(cfg.seed)
        self.train_loader = DataLoader(
            self.train_stream,
            batch_size=None,
            collate_fn=collate,
            num_workers=cfg.data.num_workers,
            pin_memory=False,
            generator=g,
        )

    def _check_data_options(self) -> None:
        d = self.cfg.data
        if d.frontend_device not in ("workers", "device"):
            raise ValueError(f"data.frontend_device: use 'workers' or 'device' (got {d.frontend_device!r})")
        if d.stream_resume not in ("skip", "restart"):
            raise ValueError(f"data.stream_resume: use 'skip' or 'restart' (got {d.stream_resume!r})")
        if d.random_crop_frames is not None:
            rc = d.random_crop_frames
            if not self.packed:
                raise ValueError(
                    "data.random_crop_frames: random-length crops are for native-length (packed) models; "
                    f"{self.model_name} takes a fixed grid (use data.clip_seconds)"
                )
            if len(rc) != 2 or not all(isinstance(v, int) for v in rc) or not 0 < rc[0] <= rc[1]:
                raise ValueError(f"data.random_crop_frames: expected [min, max] frames with 0 < min <= max, got {rc}")
        if d.shuffle_buffer < 1 or d.pack_buffer < 1:
            raise ValueError("data.shuffle_buffer and data.pack_buffer must be >= 1")

    def _frame_target_spec(self) -> FrameTargetSpec | None:
        """Frame-target rasterisation for ``sed.frame_weight > 0`` (errors when the set-up can't)."""
        sed = self.cfg.sed
        if sed.frame_weight < 0 or sed.frame_weight > 1:
            raise ValueError(f"sed.frame_weight must be in [0, 1], got {sed.frame_weight}")
        if not sed.enabled:
            return None
        if sed.rule not in ("any", "half"):
            raise ValueError(f"sed.rule: use 'any' or 'half' (got {sed.rule!r})")
        if sed.weak_pool not in ("mean", "max"):
            raise ValueError(f"sed.weak_pool: use 'mean' or 'max' (got {sed.weak_pool!r})")
        if self.loss_kind != "bce":
            raise ValueError("sed.frame_weight > 0 trains frame-level BCE: set loss=bce (or data.multilabel=true)")
        if self.cfg.augment.mixup_alpha > 0:
            raise ValueError(
                "sed.frame_weight > 0: mixup has no aligned frame targets; set augment.mixup_alpha=0 for strong-label "
                "training"
            )
        labels = tuple(self.labels.names)
        c = self.contract
        if c.frame_step_frames is None:
            if self.packed:
                raise ValueError(
                    f"sed.frame_weight > 0: {self.model_name} has no frame-wise head; set model.kwargs.frame_head=true"
                )
            raise ValueError(
                f"sed.frame_weight > 0: {self.model_name} has no frame-wise output (num_steps/step_frames); "
                "use HTS-AT or ElasticAST with frame_head=true"
            )
        return FrameTargetSpec(labels, step_frames=c.frame_step_frames, num_steps=c.frame_steps, rule=sed.rule)

    def _build_optimisation(self) -> None:
        cfg, info = self.cfg, self.info
        # optimisation
        if info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model: nn.Module = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp_model = self.model
        self.optimizer = build_optimizer(self.model, cfg.optim)
        amp = cfg.amp
        if amp == "auto":
            amp = "bf16" if self.device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
        if amp not in ("no", "bf16", "fp16"):
            raise ValueError(f"amp: use auto, no, bf16 or fp16 (got {cfg.amp!r})")
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp=fp16 needs a CUDA device; use amp=bf16 (or no) on CPU")
        self.amp_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        steps_per_epoch = max(1, len(self.sampler) // cfg.optim.grad_accum) if self.sampler is not None else 1
        if cfg.max_steps is not None:
            self.total_steps = int(cfg.max_steps)
        elif cfg.epochs is not None:
            self.total_steps = int(cfg.epochs) * steps_per_epoch
        else:
            raise ValueError("set max_steps or epochs")
        self.step, self.epoch, self.position = 0, 0, 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.last_metrics: dict[str, float] = {}
        if self.resume_from is not None:
            self._resume(self.resume_from)

    def _loader(self, ds: SpectrogramDataset, sampler: BudgetBatchSampler, collate: TrainCollator) -> DataLoader:
        g = torch.Generator()
        g.manual_seed(self.cfg.seed)
        return DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=g,
        )

    def _model_source(self) -> tuple[str, dict[str, Any], dict[str, torch.Tensor] | None]:
        mc = self.cfg.model
        if mc.init_from is None:
            if mc.name is None:
                raise ValueError("model.name is not set (see `audioflex models`), and no model.init_from given")
            return mc.name, dict(mc.kwargs), None
        from safetensors.torch import load_file

        from audioflex.checkpoints.io import WEIGHTS

        meta = read_meta(mc.init_from)
        name = mc.name or meta["model_name"]
        check_model_kwargs(name, mc.kwargs)
        kwargs = dict(meta["model_args"]) if name == meta["model_name"] else {}
        kwargs.update(mc.kwargs)
        kwargs.pop("num_classes", None)
        return name, kwargs, load_file(str(Path(mc.init_from) / WEIGHTS))

    def _load_init(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected, misshaped = describe_mismatch(model, state)
        skip = {m.split(":")[0] for m in misshaped}
        if skip:
            logger.info("init_from: %d tensor(s) left freshly initialised (shape differs): %s", len(skip), sorted(skip))
        state = {k: v for k, v in state.items() if k not in skip}
        if self.cfg.model.init_strict and skip:
            raise ValueError(f"model.init_strict: shapes differ for {sorted(skip)}")
        strict = self.cfg.model.init_strict and not skip
        load_state_checked(model, state, strict=strict, source=str(self.cfg.model.init_from))
        if missing or unexpected:
            logger.info("init_from: %d missing, %d unexpected keys", len(missing), len(unexpected))

    # ---------------------------------------------------------------- checkpoints
    def _extra(self) -> dict[str, Any]:
        return {
            "multilabel": self.multilabel,
            "loss": self.loss_kind,
            "step": self.step,
            "metric_name": self.metric_name,
            "metric": self.last_metrics.get("primary"),
            "train_state": st.STATE_JSON,
        }

    def save_last(self) -> None:
        info = self.info
        rng = st.rng_tensors(info.rank)
        if info.enabled:
            rng = self._gather_rng(rng)
        if not info.is_main:
            return
        tensors, opt_meta = st.flatten_optimizer(self.optimizer.state_dict())
        tensors.update(rng)
        meta = {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "world_size": info.world_size,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "last_metrics": self.last_metrics,
            "bad_files": self.bad_count,
            "optimizer": opt_meta,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "host_rng": st.host_rng_state(),
        }
        tmp = Path(tempfile.mkdtemp(prefix=".last.tmp-", dir=self.run_dir))
        try:
            ck = tmp / "last"
            labels = self.labels.to_list()
            save_checkpoint(ck, self.model, frontend=self.frontend_cfg, labels=labels, extra=self._extra())
            st.write_state(ck, tensors, meta)
            for f in ck.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            _swap_dir(ck, self.run_dir / "last")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _gather_rng(self, rng: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mine = rng[f"rng/torch/{self.info.rank}"]
        out = [torch.empty_like(mine) for _ in range(self.info.world_size)]
        dist.all_gather(out, mine)
        return {f"rng/torch/{r}": t for r, t in enumerate(out)}

    def _resume(self, ckpt: Path) -> None:
        from safetensors.torch import load_file

        from audioflex.checkpoints.io import WEIGHTS

        tensors, meta = st.read_state(ckpt)
        load_state_checked(self.model, load_file(str(ckpt / WEIGHTS), device=str(self.device)), source=str(ckpt))
        opt_sd = st.unflatten_optimizer(tensors, meta["optimizer"])
        self.optimizer.load_state_dict(opt_sd)
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        self.step, self.epoch, self.position = int(meta["step"]), int(meta["epoch"]), int(meta["position"])
        self.best_metric, self.best_step = meta.get("best_metric"), meta.get("best_step")
        self.last_metrics = meta.get("last_metrics") or {}
        self.bad_count = int(meta.get("bad_files", 0))
        if self.info.is_main:
            dropped = st.truncate_metrics(self.metrics_path, self.step)
            if dropped:
                logger.info("metrics.jsonl: dropped %d row(s) past step %d (repeated from there)", dropped, self.step)
        if meta.get("world_size", 1) != self.info.world_size:
            logger.warning(
                "resuming a %d-process run with %d processes: the data order of the current epoch changes",
                meta.get("world_size", 1),
                self.info.world_size,
            )
            self.position = 0
            self.epoch += 1
        if self.stream and self.position and self.cfg.data.stream_resume == "restart":
            logger.info("stream_resume=restart: epoch %d of the shard stream starts over", self.epoch)
            self.position = 0
        if not st.restore_rng(tensors, meta.get("host_rng"), self.info.rank):
            logger.warning("checkpoint has no RNG state for rank %d; continuing with a fresh one", self.info.rank)
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", ckpt, self.step, self.epoch, self.position)

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation metrics on rank 0 (empty on other ranks or without a valid set)."""
        if self.valid_loader is None:
            return {}
        model = self.model
        was_training = model.training
        model.eval()
        scores, targets, losses = [], [], []
        for batch in self.valid_loader:
            self.report_bad(batch.bad)
            self.report_notes(batch.notes)
            if batch.inputs is None:
                continue
            batch = batch.to(self.device)
            with self._autocast():
                out = self._forward(model, batch)
            logits = out.clip_logits.float()
            losses.append(per_clip_loss(logits, batch.targets, self.loss_kind).cpu())
            probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, -1)
            scores.append(probs.cpu())
            targets.append(batch.targets.float().cpu())
        model.train(was_training)
        if not scores:
            return {}
        res = _metrics(torch.cat(scores), torch.cat(targets), self.multilabel)
        res["loss"] = float(torch.cat(losses).mean())
        return res

    def _forward(self, model: nn.Module, batch: Batch) -> AudioOutput:
        """The model on a batch: ``model(PackedBatch)`` or ``model(spec [B, F, T], frames [B])``
        (the model contract's two conventions)."""
        if self.packed:
            return model(batch.inputs)
        return model(batch.inputs, batch.frames)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _maybe_eval_and_save(self, final: bool) -> None:
        cfg = self.cfg
        do_eval = final or (cfg.eval_every > 0 and self.step % cfg.eval_every == 0)
        save_every = cfg.save_every if cfg.save_every is not None else cfg.eval_every
        do_save = final or (save_every > 0 and self.step % save_every == 0)
        if do_eval and self.info.is_main and self.valid_loader is not None:
            res = self.evaluate()
            if res:
                self.last_metrics = res
                self.log({"split": "valid", "step": self.step, "epoch": self.epoch, **res})
                value = res["primary"]
                if self.best_metric is None or value > self.best_metric:
                    self.best_metric, self.best_step = value, self.step
                    if cfg.keep_best:
                        save_checkpoint(
                            self.run_dir / "best",
                            self.model,
                            frontend=self.frontend_cfg,
                            labels=self.labels.to_list(),
                            extra=self._extra(),
                        )
                logger.info("step %d: valid %s %.4f (best %.4f @ %s)", self.step, self.metric_name, value,
                            self.best_metric, self.best_step)
        if do_eval or do_save:
            barrier(self.info)
        if do_save:
            self.save_last()
            barrier(self.info)

    # ---------------------------------------------------------------- training
    def _micro_step(self, batch: Batch, n_global: float, sync: bool) -> float:
        """Forward + backward of one micro-batch; returns its summed clip loss."""
        ctx = contextlib.nullcontext() if sync or not self.info.enabled else self.ddp_model.no_sync()
        with ctx:
            with self._autocast():
                out = self._forward(self.ddp_model, batch)
            per_clip = per_clip_loss(out.clip_logits, batch.targets, self.loss_kind)
            if self.cfg.sed.enabled and batch.frame_targets is not None:
                sed = self.cfg.sed
                per_clip = sed_per_clip_loss(
                    out,
                    batch,
                    per_clip,
                    frame_weight=sed.frame_weight,
                    weak_frame_loss=sed.weak_frame_loss,
                    weak_pool=sed.weak_pool,
                )
            if batch.num_clips == 0:  # a stand-in batch (all clips unreadable): keep DDP in step
                per_clip = per_clip * 0.0
            loss = per_clip.sum() * (self.info.world_size / n_global)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
        return float(per_clip.detach().sum())

    def run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        accum = cfg.optim.grad_accum
        self.model.train()
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (cfg.progress and info.is_main),
                   desc="train", dynamic_ncols=True)
        fallback: Batch | None = None
        t0, clips_since, tokens_since, loss_since, n_since = time.perf_counter(), 0, 0, 0.0, 0
        while self.step < self.total_steps:
            start_position, steps_before = self.position, self.step
            if self.stream:
                self.train_stream.set_epoch(self.epoch)
                it = iter(self.train_loader)
                for _ in range(self.position):  # stream_resume=skip: replay up to the checkpoint
                    next(it, None)
            else:
                self.sampler.set_epoch(self.epoch)
                self.sampler.load_state_dict({"epoch": self.epoch, "position": self.position})
                self.train_ds.set_epoch(self.epoch)
                it = iter(self.train_loader)
            while self.step < self.total_steps:
                micro = []
                for _ in range(accum):
                    b = next(it, None)
                    if b is None:
                        break
                    micro.append(b)
                if self.stream:  # ranks stream different shards: stop together when one runs out
                    if all_reduce_sum(int(len(micro) == accum), info) < info.world_size:
                        break
                elif len(micro) < accum:
                    break
                self.position += accum
                if self.device_frontend is not None:
                    micro = [self.device_frontend(b) for b in micro]
                for b in micro:
                    self.report_bad(b.bad)
                    self.report_notes(b.notes)
                n_local = sum(b.num_clips for b in micro)
                n_global = all_reduce_sum(n_local, info)
                if n_global == 0:
                    logger.warning("step %d: every clip of the global batch was unreadable; skipped", self.step)
                    continue
                set_lr(self.optimizer, cfg.optim.lr, lr_factor(self.step, cfg.optim, self.total_steps))
                loss_sum = 0.0
                for k, b in enumerate(micro):
                    if b.inputs is None:
                        if fallback is None:
                            if not info.enabled:
                                continue
                            raise RuntimeError("a rank's first batch was entirely unreadable; check bad_files.txt")
                        b = dataclasses.replace(fallback, index=())
                    else:
                        fallback = b
                    loss_sum += self._micro_step(b.to(self.device), n_global, sync=k == accum - 1)
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if cfg.optim.grad_clip is not None and cfg.optim.grad_clip > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                clips_since += n_local
                tokens_since += sum(b.num_tokens for b in micro)
                loss_since += loss_sum
                n_since += n_local
                if self.step % max(1, cfg.log_every) == 0 or self.step == self.total_steps:
                    dt = max(time.perf_counter() - t0, 1e-9)
                    loss_avg = all_reduce_sum(loss_since, info) / max(all_reduce_sum(n_since, info), 1)
                    lr = self.optimizer.param_groups[0]["lr"]
                    rec = {
                        "split": "train",
                        "step": self.step,
                        "epoch": self.epoch,
                        "loss": loss_avg,
                        "lr": lr,
                        "clips_per_s": clips_since * info.world_size / dt,
                        "tokens_per_s": tokens_since * info.world_size / dt,
                        "bad_files": self.bad_count,
                    }
                    self.log(rec)
                    bar.set_postfix(loss=f"{loss_avg:.4f}", lr=f"{lr:.2e}", clips_s=f"{rec['clips_per_s']:.1f}")
                    t0, clips_since, tokens_since, loss_since, n_since = time.perf_counter(), 0, 0, 0.0, 0
                bar.update(1)
                if not math.isfinite(loss_sum):
                    raise FloatingPointError(f"step {self.step}: loss is {loss_sum}; lower optim.lr or use amp=no")
                if self.step < self.total_steps:
                    self._maybe_eval_and_save(final=False)
            else:
                continue
            if self.step < self.total_steps:
                self.epoch += 1
                self.position = 0
                if self.sampler is not None and len(self.sampler) < accum:
                    raise ValueError("the training set gives fewer batches per epoch than optim.grad_accum")
                if self.sampler is None and self.step == steps_before and start_position == 0:
                    raise ValueError(
                        "data.train: the shard stream gave fewer batches per epoch than optim.grad_accum on a rank "
                        "(too few clips or shards per rank)"
                    )
        bar.close()
        self._maybe_eval_and_save(final=True)
        if self.bad_count:
            logger.warning("%d unreadable clip(s) were skipped; see %s", self.bad_count, self.bad_path)
        if self.tb is not None:
            self.tb.close()
        best = self.run_dir / "best"
        return TrainResult(
            run_dir=self.run_dir,
            steps=self.step,
            metric_name=self.metric_name,
            best_metric=self.best_metric,
            best_step=self.best_step,
            last_metrics=self.last_metrics,
            last_checkpoint=self.run_dir / "last",
            best_checkpoint=best if best.is_dir() else None,
            metrics_path=self.metrics_path,
            bad_files=self.bad_count,
        )


def train(config: TrainConfig | str | Path | dict[str, Any], overrides: Sequence[str] = ()) -> TrainResult:
    """Train a model as ``config`` says; returns where everything went.

    Args:
        config: a :class:`TrainConfig`, a YAML file (or run directory holding ``config.yaml``), or
            a dict of the same shape.
        overrides: ``"a.b=value"`` strings applied on top (values parsed as YAML), e.g.
            ``["optim.lr=3e-4", "resume=runs/x"]``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this; the process group is
    joined from the environment (``gloo`` on CPU, ``nccl`` on CUDA), the model is wrapped in
    DDP, each rank reads its own token-budget batches, and only rank 0 writes files. A run
    killed at any point resumes from its last checkpoint with ``resume=<run dir>``.
    """
    cfg = load_config(config, overrides)
    if cfg.deterministic:
        # bit-reproducible runs (the packed path's index/scatter backward is otherwise order-dependent)
        torch.use_deterministic_algorithms(True, warn_only=True)
    info = init_distributed(cfg.device)
    try:
        trainer = _Trainer(cfg, info)
        trainer.build()
        return trainer.run()
    finally:
        cleanup(info)


__all__ = ["TrainResult", "train"]

"""Everything a training run is built from: the model (fresh or ``init_from``) and its front
end, the frame-target set-up for strong labels, the data (:mod:`audioflex.train.data_builders`),
DDP and the optimiser with its mixed-precision settings.

:func:`build_setup` does it all in a fixed order (model init and the per-rank seed come before any
data is built, as ever, so seeded runs stay bit-identical) and returns a :class:`TrainSetup`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from audioflex.audio.frontend.base import FrontendConfig
from audioflex.checkpoints.io import describe_mismatch, load_state_checked, read_meta
from audioflex.data.datasets import DeviceFrontend, SpectrogramDataset, StreamingBatches
from audioflex.data.records import ClipRecord, LabelSet
from audioflex.data.samplers import BudgetBatchSampler, derive_seed
from audioflex.data.targets import FrameTargetSpec
from audioflex.evaluate.selection import SELECT_METRICS
from audioflex.models.contract import ModelContract, contract_of
from audioflex.models.registry import create_model, default_frontend, get_spec
from audioflex.train import data_builders as db
from audioflex.train.config import ModelConfig, TrainConfig, check_model_kwargs
from audioflex.train.distributed import DistInfo
from audioflex.train.health import chance_loss
from audioflex.train.norm_stats import check_norm_stats_options, resolve_norm_stats
from audioflex.train.optim import build_optimizer
from audioflex.train.runlog import RunLog

logger = logging.getLogger(__name__)

GRID_PATCH = 16  # the datasets' token column for fixed-grid models (there only a token count)


@dataclasses.dataclass
class TrainSetup:
    """What :func:`build_setup` built (see the module docstring).

    Attributes:
        model_name, frontend: the registered model name and the front-end config trained with.
        labels, multilabel, loss_kind, metric_name: the label set and what is optimised and scored
            (``bce``/``ce``; ``mAP``/``accuracy``).
        model, ddp_model: the model on the device, and the same wrapped in DDP (or itself).
        packed: whether the model takes packed batches (else a fixed grid).
        stream: whether training streams shards (``train_stream`` set, ``sampler`` None).
        train_ds, train_loader, sampler, train_stream: the training data.
        device_frontend: the front end run on the device (``data.frontend_device: device``).
        valid_loader: validation batches (rank 0 with ``data.valid``, when no event validation runs; else None).
        event_records: strongly labelled validation clips scored at full length for frame and
            event metrics (rank 0 of a strong-label run, ``sed.frame_weight > 0``; else empty).
        optimizer, amp_dtype, scaler: the optimiser, autocast dtype (None: fp32) and fp16 scaler.
        total_steps: optimiser steps of the whole run.
        chance_loss: the training loss of the best constant prediction (health check).
    """

    model_name: str
    frontend: FrontendConfig
    labels: LabelSet
    multilabel: bool
    loss_kind: str
    metric_name: str
    model: nn.Module
    ddp_model: nn.Module
    packed: bool
    stream: bool
    train_ds: SpectrogramDataset
    train_loader: DataLoader
    sampler: BudgetBatchSampler | None
    train_stream: StreamingBatches | None
    device_frontend: DeviceFrontend | None
    valid_loader: DataLoader | None
    event_records: list[ClipRecord]
    optimizer: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    total_steps: int
    chance_loss: float


def model_source(mc: ModelConfig) -> tuple[str, dict[str, Any], dict[str, torch.Tensor] | None]:
    """(model name, model kwargs, initial weights or None) of ``model.*`` (``init_from``: the
    checkpoint's name and args, overridden by ``model.name``/``model.kwargs``)."""
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


def load_init(model: nn.Module, state: dict[str, torch.Tensor], mc: ModelConfig) -> None:
    """Load ``init_from`` weights; tensors whose shape differs stay fresh (an error with ``init_strict``)."""
    missing, unexpected, misshaped = describe_mismatch(model, state)
    skip = {m.split(":")[0] for m in misshaped}
    if skip:
        logger.info("init_from: %d tensor(s) left freshly initialised (shape differs): %s", len(skip), sorted(skip))
    state = {k: v for k, v in state.items() if k not in skip}
    if mc.init_strict and skip:
        raise ValueError(f"model.init_strict: shapes differ for {sorted(skip)}")
    strict = mc.init_strict and not skip
    load_state_checked(model, state, strict=strict, source=str(mc.init_from))
    if missing or unexpected:
        logger.info("init_from: %d missing, %d unexpected keys", len(missing), len(unexpected))


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, str, FrontendConfig]:
    """The model (seeded with ``cfg.seed``; ``init_from`` weights loaded), its name and front end.
    The front end's mel bins and fixed length become model kwargs where the builder takes them."""
    name, model_kwargs, init_state = model_source(cfg.model)
    fe = default_frontend(name)
    if fe is None:
        raise ValueError(f"model {name!r} registers no front end; it cannot be trained from audio")
    frontend: FrontendConfig = fe.replace(**cfg.frontend) if cfg.frontend else fe
    params = inspect.signature(get_spec(name).builder).parameters
    kwargs = {**model_kwargs, "num_classes": num_classes}
    n_mels = getattr(frontend, "num_mel_bins", None)
    if n_mels is not None and "num_mel_bins" in params:
        kwargs["num_mel_bins"] = n_mels
    target_len = getattr(frontend, "target_length", None)
    if target_len is not None and "max_length" in params and "max_length" not in model_kwargs:
        kwargs["max_length"] = target_len
    torch.manual_seed(cfg.seed)
    model = create_model(name, **kwargs)
    if init_state is not None:
        load_init(model, init_state, cfg.model)
    return model, name, frontend


def frame_target_spec(
    cfg: TrainConfig, contract: ModelContract, loss_kind: str, labels: LabelSet, model_name: str
) -> FrameTargetSpec | None:
    """Frame-target rasterisation for ``sed.frame_weight > 0`` (errors when the set-up can't)."""
    sed = cfg.sed
    if sed.frame_weight < 0 or sed.frame_weight > 1:
        raise ValueError(f"sed.frame_weight must be in [0, 1], got {sed.frame_weight}")
    if not sed.enabled:
        return None
    if sed.rule not in ("any", "half"):
        raise ValueError(f"sed.rule: use 'any' or 'half' (got {sed.rule!r})")
    if sed.select not in SELECT_METRICS:
        raise ValueError(f"sed.select: use one of {', '.join(SELECT_METRICS)} (got {sed.select!r})")
    if sed.weak_pool not in ("mean", "max"):
        raise ValueError(f"sed.weak_pool: use 'mean' or 'max' (got {sed.weak_pool!r})")
    if loss_kind != "bce":
        raise ValueError("sed.frame_weight > 0 trains frame-level BCE: set loss=bce (or data.multilabel=true)")
    if cfg.augment.mixup_alpha > 0:
        raise ValueError(
            "sed.frame_weight > 0: mixup has no aligned frame targets; set augment.mixup_alpha=0 for strong-label "
            "training"
        )
    if cfg.augment.time_shift_ms > 0:
        raise ValueError(
            "sed.frame_weight > 0: augment.time_shift_ms moves the audio but not its event times; set it to 0 for "
            "strong-label training"
        )
    if cfg.augment.speed:
        raise ValueError(
            "sed.frame_weight > 0: augment.speed changes the audio's timing but not its event times; leave it "
            "empty for strong-label training"
        )
    if contract.frame_step_frames is None:
        if contract.packed:
            raise ValueError(
                f"sed.frame_weight > 0: {model_name} has no frame-wise head; set model.kwargs.frame_head=true"
            )
        raise ValueError(
            f"sed.frame_weight > 0: {model_name} has no frame-wise output (num_steps/step_frames); "
            "use HTS-AT or ElasticAST with frame_head=true"
        )
    return FrameTargetSpec(
        tuple(labels.names), step_frames=contract.frame_step_frames, num_steps=contract.frame_steps, rule=sed.rule,
        column_frames=contract.column_frames if contract.packed else None,
    )


def amp_settings(amp: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """(autocast dtype or None, fp16 grad scaler or None) of ``amp`` (``auto``: bf16 on CUDA with
    bf16 support, else off)."""
    requested = amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if amp not in ("no", "bf16", "fp16"):
        raise ValueError(f"amp: use auto, no, bf16 or fp16 (got {requested!r})")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp=fp16 needs a CUDA device; use amp=bf16 (or no) on CPU")
    dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return dtype, torch.amp.GradScaler("cuda") if amp == "fp16" else None


UNBOUNDED_STEPS = 10**9  # a run bounded by max_minutes alone


def total_steps(cfg: TrainConfig, sampler: BudgetBatchSampler | None) -> int:
    """``max_steps``, or ``epochs`` x optimiser steps per epoch of the sampler (``UNBOUNDED_STEPS``
    when only ``max_minutes`` bounds the run)."""
    if cfg.max_steps is not None:
        return int(cfg.max_steps)
    if cfg.epochs is not None:
        steps_per_epoch = max(1, len(sampler) // cfg.optim.grad_accum) if sampler is not None else 1
        return int(cfg.epochs) * steps_per_epoch
    if cfg.max_minutes is not None:
        return UNBOUNDED_STEPS
    raise ValueError("set max_steps, epochs or max_minutes")


def build_setup(cfg: TrainConfig, info: DistInfo, run_dir: Path, runlog: RunLog) -> TrainSetup:
    """Build the whole run (data read, model, datasets and loaders, DDP, optimiser)."""
    plan = db.read_data(cfg)
    logger.info("data: %d training clip(s), %d validation clip(s), %d classes",
                len(plan.train_records), len(plan.valid_records), len(plan.labels))
    loss_kind = db.loss_kind_for(cfg, plan)
    model, model_name, frontend = build_model(cfg, len(plan.labels))
    contract = contract_of(model)
    packed = contract.packed
    patch = contract.column_frames if packed else GRID_PATCH
    frame_spec = frame_target_spec(cfg, contract, loss_kind, plan.labels, model_name)
    model = model.to(info.device)
    # per-rank stream for model-internal randomness (token dropping, drop-path)
    torch.manual_seed(derive_seed(cfg.seed, 0x70CE, info.rank))

    db.check_data_options(cfg.data, packed, model_name)
    db.resolve_plan_durations(plan, run_dir, info, runlog)
    check_norm_stats_options(cfg.data, frontend, plan.stream)
    frontend = resolve_norm_stats(cfg.data, frontend, plan.train_records, run_dir, info, cfg.seed)
    if not plan.train_records and not plan.stream:
        raise ValueError(f"data.train: none of the clips of {cfg.data.train.path} is readable")
    train_ds = db.train_dataset(cfg, plan, frontend, packed=packed, patch=patch, frame_targets=frame_spec)
    collate = db.train_collator(cfg, train_ds, packed=packed, patch=patch)
    device_frontend = DeviceFrontend(train_ds, collate, info.device) if cfg.data.frontend_device == "device" else None
    sampler: BudgetBatchSampler | None = None
    train_stream: StreamingBatches | None = None
    if plan.stream:
        train_stream, train_loader = db.stream_loader(cfg, info, plan.shards, train_ds, collate, packed=packed)
    else:
        sampler, train_loader = db.index_loader(
            cfg, info, train_ds, plan.train_records, collate, packed=packed, patch=patch
        )
    valid = None
    events = list(plan.valid_records) if frame_spec is not None and info.is_main else []
    if events and not any(r.events for r in events):
        logger.warning("data.valid: no clip has strong labels; validation scores clips only (sed.select ignored)")
        events = []
    if plan.valid_records and info.is_main and not events:
        valid = db.valid_loader(cfg, plan, frontend, info.device, packed=packed, patch=patch)

    if info.enabled:
        ids = [info.device.index] if info.device.type == "cuda" else None
        ddp_model: nn.Module = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    else:
        ddp_model = model
    optimizer = build_optimizer(model, cfg.optim)
    amp_dtype, scaler = amp_settings(cfg.amp, info.device)
    return TrainSetup(
        model_name=model_name,
        frontend=frontend,
        labels=plan.labels,
        multilabel=plan.multilabel,
        loss_kind=loss_kind,
        metric_name=cfg.sed.select if events else ("mAP" if plan.multilabel else "accuracy"),
        model=model,
        ddp_model=ddp_model,
        packed=packed,
        stream=plan.stream,
        train_ds=train_ds,
        train_loader=train_loader,
        sampler=sampler,
        train_stream=train_stream,
        device_frontend=device_frontend,
        valid_loader=valid,
        event_records=events,
        optimizer=optimizer,
        amp_dtype=amp_dtype,
        scaler=scaler,
        total_steps=total_steps(cfg, sampler),
        chance_loss=chance_loss(
            loss_kind, [[plan.labels.index(n) for n in r.labels] for r in plan.train_records], len(plan.labels)
        ),
    )


__all__ = [
    "GRID_PATCH",
    "UNBOUNDED_STEPS",
    "TrainSetup",
    "amp_settings",
    "build_model",
    "build_setup",
    "frame_target_spec",
    "load_init",
    "model_source",
    "total_steps",
]

"""Optimisers and learning-rate schedules (a pure function of the step: nothing to save but it)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from audioflex.train.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights with decay; biases, norms, position tables and tokens without."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name or "token" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """``adamw`` or ``adam`` over :func:`param_groups` (``adam``: L2 weight decay as in torch)."""
    kwargs = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps}
    name = cfg.name.lower()
    if name == "adamw":
        return torch.optim.AdamW(param_groups(model, cfg.weight_decay), **kwargs)
    if name == "adam":
        return torch.optim.Adam(param_groups(model, cfg.weight_decay), **kwargs)
    raise ValueError(f"optim.name: unknown optimiser {cfg.name!r}; use 'adamw' or 'adam'")


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of the base lr at optimiser ``step`` (0-based): linear warm-up, then decay."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        t = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        if step < cfg.step_start:
            return 1.0
        return cfg.gamma ** ((step - cfg.step_start) // max(1, cfg.step_size) + 1)
    raise ValueError(f"optim.schedule: unknown schedule {cfg.schedule!r}; use cosine, step or constant")


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every group's lr to ``base_lr * factor``; returns it."""
    lr = base_lr * factor
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr


__all__ = ["build_optimizer", "lr_factor", "param_groups", "set_lr"]

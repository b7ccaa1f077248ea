"""The probe's predictor grid and training limits (:class:`ProbeConfig`, the HEAR kit's
defaults) and the grid points and event post-processing candidates tried on a task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from audioflex.hear.probe.tasks import HearTask

logger = logging.getLogger(__name__)


@dataclass
class ProbeConfig:
    """The predictor grid and training limits; the defaults are the HEAR kit's ("default" grid of
    heareval 2021.1): 8 grid points drawn (seeded) from learning rate x depth x initialisation,
    validation every 3 epochs, early stopping after 20 validations without improvement of the
    task's first score (``early_stopping="loss"``: of the validation loss), at most 500 epochs.
    A task's ``evaluation_params`` (``task_specific_param_grid``, ``event_postprocessing_grid``) and
    ``use_scoring_for_early_stopping`` in its metadata override these, as in the kit.
    ``standardize`` (not in the kit) scales embeddings with training-set statistics.
    ``stop_on_nan``: stop a grid point at a NaN validation score, as the kit does (through
    Lightning's ``check_finite``); on event tasks that is any validation whose predictions hold no
    event. Where the kit would fail (NaN before any finite validation) and with ``False``, NaN
    counts as 0."""

    learning_rates: tuple[float, ...] = (3.2e-3, 1e-3, 3.2e-4, 1e-4)
    hidden_layers: tuple[int, ...] = (1, 2)
    initializations: tuple[str, ...] = ("xavier_uniform", "xavier_normal")
    grid_points: int = 8
    hidden_dim: int = 1024
    dropout: float = 0.1
    max_epochs: int = 500
    check_every: int = 3
    patience: int = 20
    batch_size: int = 1024
    seed: int = 42
    standardize: bool = False
    early_stopping: str | None = None
    stop_on_nan: bool = True
    min_event_ms: tuple[float, ...] = (125.0, 250.0)
    median_ms: tuple[float, ...] = (250.0,)


_GRID_KEYS = {"lr": "learning_rates", "hidden_layers": "hidden_layers", "initialization": "initializations",
              "hidden_dim": "hidden_dim", "dropout": "dropout", "max_epochs": "max_epochs",
              "check_val_every_n_epoch": "check_every", "patience": "patience", "batch_size": "batch_size"}


def grid(task: HearTask, cfg: ProbeConfig) -> list[dict[str, Any]]:
    """The grid points tried: the task's ``evaluation_params.task_specific_param_grid`` applied,
    listed in ``sklearn.model_selection.ParameterGrid`` order, shuffled with ``random.Random(seed)``
    and cut to ``cfg.grid_points``, as the kit does after ``seed_everything(42)`` (so the default
    config tries the same 8 points as the kit)."""
    import itertools
    import random

    axes: dict[str, list[Any]] = {}
    for key, attr in _GRID_KEYS.items():
        v = getattr(cfg, attr)
        axes[key] = list(v) if isinstance(v, (list, tuple)) else [v]
    if task.metadata.get("task_name") == "dcase2016_task2":  # the kit's own special case
        axes["check_val_every_n_epoch"] = [10]
    for key, values in task.metadata.get("evaluation_params", {}).get("task_specific_param_grid", {}).items():
        if key in _GRID_KEYS:
            axes[key] = list(values) if isinstance(values, list) else [values]
        else:
            logger.warning("task_specific_param_grid: %s is not used by this probe", key)
    keys = sorted(axes)  # sklearn's ParameterGrid order; with seed 42 the kit's own 8 points
    confs = [dict(zip(keys, vals)) for vals in itertools.product(*(axes[k] for k in keys))]
    random.Random(cfg.seed).shuffle(confs)
    return confs[: max(1, cfg.grid_points)]


def postprocessing_grid(task: HearTask, cfg: ProbeConfig) -> list[tuple[float, float]]:
    """Event post-processing candidates ``(median_ms, min_event_ms)`` (task metadata overrides)."""
    g = task.metadata.get("evaluation_params", {}).get("event_postprocessing_grid", {})
    med = g.get("median_filter_ms", list(cfg.median_ms))
    mins = g.get("min_duration", list(cfg.min_event_ms))
    return [(float(m), float(k)) for m in med for k in mins]


__all__ = ["ProbeConfig", "grid", "postprocessing_grid"]

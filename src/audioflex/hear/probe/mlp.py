"""The probe's predictor (:class:`ProbeMLP`, as the HEAR kit builds it) and its training on one
grid point with validation and early stopping (:func:`train_probe`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from audioflex.hear.probe.config import ProbeConfig
from audioflex.hear.probe.scores import maximize
from audioflex.hear.probe.splits import SplitData, best_score
from audioflex.hear.probe.tasks import HearTask


class ProbeMLP(nn.Module):
    """``[B, D] -> [B, C]``: ``hidden_layers`` x (Linear, BatchNorm, Dropout, ReLU), then a linear
    projection; weights initialised as the HEAR kit does (Xavier uniform or normal, gain 1 for the
    first layer and ``sqrt(2)`` after a ReLU; biases keep PyTorch's default)."""

    def __init__(self, dim: int, num_classes: int, hidden_layers: int = 1, hidden_dim: int = 1024,
                 dropout: float = 0.1, initialization: str = "xavier_uniform") -> None:
        super().__init__()
        init = {"xavier_uniform": nn.init.xavier_uniform_, "xavier_normal": nn.init.xavier_normal_}.get(initialization)
        if init is None:
            raise ValueError(f"initialization must be 'xavier_uniform' or 'xavier_normal', got {initialization!r}")
        mods: list[nn.Module] = []
        last = "linear"
        for _ in range(hidden_layers):
            lin = nn.Linear(dim, hidden_dim)
            init(lin.weight, gain=nn.init.calculate_gain(last))
            mods += [lin, nn.BatchNorm1d(hidden_dim), nn.Dropout(dropout), nn.ReLU()]
            dim, last = hidden_dim, "relu"
        proj = nn.Linear(dim, num_classes)
        init(proj.weight, gain=nn.init.calculate_gain(last))
        self.net = nn.Sequential(*mods, proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class Fit:
    model: ProbeMLP
    valid_score: float
    epoch: int
    postprocessing: tuple[float, float] | None
    conf: dict[str, Any]
    epochs: int = 0  # epochs trained (the stop)


def train_probe(task: HearTask, tr: SplitData, va: SplitData, valid: Sequence[str], conf: dict[str, Any],
         cfg: ProbeConfig, primary: str, by_loss: bool) -> Fit:
    """Train one grid point; keep the state of the best validation (strictly better, every
    ``check_val_every_n_epoch`` epochs) and stop after ``patience`` validations without one, or at
    a NaN validation score (an event task whose predictions hold no event), as the kit does."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = ProbeMLP(tr.x.shape[1], tr.y.shape[1], conf["hidden_layers"], conf["hidden_dim"], conf["dropout"],
                     conf["initialization"])
    opt = torch.optim.Adam(model.parameters(), lr=conf["lr"])
    loss_fn = nn.BCEWithLogitsLoss() if task.multilabel else nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(tr.x).float(), torch.from_numpy(tr.y).float()
    xv, yv = torch.from_numpy(va.x).float(), torch.from_numpy(va.y).float()

    def target(t: torch.Tensor) -> torch.Tensor:
        return t if task.multilabel else t.argmax(1)

    sign = 1.0 if (maximize(primary) and not by_loss) else -1.0
    best = Fit(copy.deepcopy(model).eval(), math.nan, -1, None, conf)  # no validation yet
    best_key, bad, n, bs = -math.inf, 0, len(xt), int(conf["batch_size"])
    epoch = -1
    for epoch in range(int(conf["max_epochs"])):
        model.train()
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            opt.zero_grad()
            loss_fn(model(xt[idx]), target(yt[idx])).backward()
            opt.step()
        if (epoch + 1) % int(conf["check_val_every_n_epoch"]):
            continue
        model.eval()
        with torch.no_grad():
            logits = model(xv)
        probs = (torch.sigmoid(logits) if task.multilabel else torch.softmax(logits, -1)).numpy()
        score, pp = best_score(task, va, probs, valid, primary, cfg)
        key = -float(loss_fn(logits, target(yv))) if by_loss else sign * score
        if math.isnan(key):
            # the kit (Lightning's EarlyStopping, check_finite) stops on a NaN score; before any
            # finite validation the kit fails ("No score"), so there NaN counts as 0 instead
            if cfg.stop_on_nan and best.epoch >= 0:
                break
            key = -math.inf if by_loss else sign * 0.0
        if key > best_key:
            best_key, bad = key, 0
            best = Fit(copy.deepcopy(model).eval(), score, epoch, pp, conf)
        else:
            bad += 1
            if bad >= int(conf["patience"]):
                break
    best.epochs = epoch + 1
    return best


def predict(model: ProbeMLP, x: np.ndarray, multilabel: bool) -> np.ndarray:
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(x).float())
        return (torch.sigmoid(out) if multilabel else torch.softmax(out, -1)).numpy()


__all__ = ["Fit", "ProbeMLP", "predict", "train_probe"]

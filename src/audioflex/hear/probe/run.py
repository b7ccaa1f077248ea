"""The shallow probe end to end: grid search on the first data split, retraining on the others,
test scores per split (:func:`probe_embeddings`), or on a HEAR kit embedding directory
(:func:`probe_heareval_dir`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from audioflex.hear.probe.config import ProbeConfig, grid
from audioflex.hear.probe.mlp import predict, train_probe
from audioflex.hear.probe.scores import maximize, nan0, task_scores
from audioflex.hear.probe.splits import SplitData, merge_splits, split_data, split_score, standardise
from audioflex.hear.probe.tasks import HearTask, data_splits, read_heareval_embeddings

logger = logging.getLogger(__name__)


def probe_embeddings(task: HearTask, embeddings: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]],
                     config: ProbeConfig | None = None, *, progress: bool = False) -> dict[str, Any]:
    """The shallow probe on given embeddings (``{split: {file name: (vectors, timestamps)}}``), as
    the HEAR kit's ``heareval.predictions``: the grid points are trained on the first data split
    (for k folds: test fold00, validate on fold01), the best by validation score is retrained on
    the other splits, and each split's test score uses its best validation epoch (and, for events,
    that epoch's post-processing). Returns ``score`` (the first score, mean over splits), all the
    task's ``scores``, and per split the details."""
    cfg = config or ProbeConfig()
    names = task_scores(task)
    primary = names[0]
    if cfg.early_stopping not in (None, "score", "loss"):
        raise ValueError(f"early_stopping must be 'score' or 'loss', got {cfg.early_stopping!r}")
    by_loss = cfg.early_stopping == "loss" or (
        cfg.early_stopping is None and not task.metadata.get("use_scoring_for_early_stopping", True))
    data = {s: split_data(task, s, embeddings[s]) for s in task.splits}
    splits = data_splits(task)
    confs = grid(task, cfg)

    def prepared(sp: dict[str, Any]) -> tuple[SplitData, SplitData, SplitData]:
        tr = merge_splits([data[s] for s in sp["train"]])
        va, te = copy.copy(data[sp["valid"]]), copy.copy(data[sp["test"]])
        if cfg.standardize:
            standardise(tr, va, te)
        return tr, va, te

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(confs) + len(splits) - 1, unit="fit", desc="probe")
    tried = []
    first = prepared(splits[0])
    tr, va, _ = first
    for i, conf in enumerate(confs):
        fit = train_probe(task, tr, va, [splits[0]["valid"]], conf, cfg, primary, by_loss)
        logger.info("grid point %d/%d (lr %g, %d hidden, %s): valid %s %.4f at epoch %d of %d", i + 1, len(confs),
                    conf["lr"], conf["hidden_layers"], conf["initialization"], primary, fit.valid_score, fit.epoch,
                    fit.epochs)
        tried.append(fit)
        if bar is not None:
            bar.update(1)
    sign = 1.0 if maximize(primary) else -1.0
    best = max(tried, key=lambda f: sign * nan0(f.valid_score))  # the first of equals, as the kit's stable sort
    best_conf = best.conf
    runs = []
    for i, sp in enumerate(splits):
        tr, va, te = first if i == 0 else prepared(sp)
        if i == 0:
            fit = best
        else:
            fit = train_probe(task, tr, va, [sp["valid"]], best_conf, cfg, primary, by_loss)
            if bar is not None:
                bar.update(1)
        probs = predict(fit.model, te.x, task.multilabel)
        scores = {n: split_score(task, n, te, probs, fit.postprocessing, [sp["test"]]) for n in names}
        runs.append({
            "test": sp["test"], "valid": sp["valid"], "train": list(sp["train"]), "test_score": scores[primary],
            "test_scores": scores, "valid_score": fit.valid_score, "epoch": fit.epoch, "epochs_trained": fit.epochs,
            "postprocessing": ({"median_filter_ms": fit.postprocessing[0], "min_duration": fit.postprocessing[1]}
                               if fit.postprocessing else None),
        })
    if bar is not None:
        bar.close()
    means = {n: float(np.mean([r["test_scores"][n] for r in runs])) for n in names}
    return {
        "task": task.metadata.get("task_name", task.root.name),
        "embedding_type": "timestamp" if task.is_event else "scene",
        "metric": primary,
        "score": means[primary],
        "scores": means,
        "hparams": {k: v for k, v in best_conf.items()},
        "grid": [{**f.conf, "valid_score": f.valid_score, "epoch": f.epoch, "epochs_trained": f.epochs} for f in tried],
        "folds": runs,
    }


def probe_heareval_dir(root: str | Path, config: ProbeConfig | None = None, *,
                       progress: bool = False) -> dict[str, Any]:
    """:func:`probe_embeddings` on a HEAR kit embedding directory (see
    :func:`read_heareval_embeddings`): scores any HEAR model's embeddings, and ours next to the kit's."""
    task, emb = read_heareval_embeddings(root)
    return probe_embeddings(task, emb, config, progress=progress)


__all__ = ["probe_embeddings", "probe_heareval_dir"]

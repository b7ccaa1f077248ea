"""Shallow-probe evaluation on HEAR-format tasks (``audioflex probe``), as the HEAR kit does it.

Task directory (heareval layout): ``task_metadata.json``, ``labelvocabulary.csv`` (``idx,label``),
``<split>.json`` per split (scene: ``{"a.wav": ["dog"]}``; event: ``{"a.wav": [{"label": "beep",
"start": 865.4, "end": 1379.8}]}`` in ms) and the audio in ``<sample_rate>/<split>/``. Splits are
``train``/``valid``/``test`` or folds ``fold00`` … (``split_mode`` containing ``kfold``, or fold
files present): fold ``i`` is tested with fold ``i + 1`` as validation and the rest as training,
and the score is the mean over folds.

Protocol: frozen embeddings (scene embeddings for scene tasks, timestamp embeddings for event
tasks; cached on disk, resumable), standardised with training statistics; an MLP (1 or 2 hidden
layers of 1024: Linear -> Dropout(0.1) -> ReLU -> BatchNorm), Adam, softmax cross-entropy
(multiclass) or sigmoid BCE (multilabel, events), early stopping on the validation loss, the
learning rate (and depth) picked on the validation score. Metrics: top-1 accuracy (multiclass),
mAP (multilabel), onset-only event F-measure (events; sed_eval, 200 ms collar, micro over classes,
with the HEAR kit's post-processing — median filter of 250 ms over the probabilities, threshold
> 0.5, minimum event length 125 or 250 ms picked on validation), all through
:mod:`audioflex.evaluate.metrics`.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


class TaskError(ValueError):
    """A HEAR task directory that cannot be used; the message says which file and why."""


# ---------------------------------------------------------------------------- task reading


@dataclass
class HearTask:
    """A HEAR task: metadata, label vocabulary, split -> {file: labels or events}."""

    root: Path
    metadata: dict[str, Any]
    labels: list[str]
    splits: dict[str, dict[str, Any]]
    audio_dirs: dict[str, Path]

    @property
    def is_event(self) -> bool:
        return self.metadata.get("embedding_type", "scene") == "event"

    @property
    def multilabel(self) -> bool:
        return self.is_event or self.metadata.get("prediction_type") == "multilabel"

    @property
    def folds(self) -> list[str]:
        return sorted(s for s in self.splits if s.startswith("fold"))


def read_task(root: str | Path, sample_rate: int | None = None) -> HearTask:
    """Read a HEAR task directory; audio from ``<sample_rate>/`` (else the first rate present)."""
    root = Path(root)
    meta_path = root / "task_metadata.json"
    if not meta_path.is_file():
        raise TaskError(f"{root}: no task_metadata.json; not a HEAR task directory")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise TaskError(f"{meta_path}: invalid JSON ({e})") from e
    vocab = root / "labelvocabulary.csv"
    if not vocab.is_file():
        raise TaskError(f"{root}: no labelvocabulary.csv (idx,label)")
    with open(vocab, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "label" not in rows[0]:
        raise TaskError(f"{vocab}: expected a header 'idx,label' and one row per label")
    labels = [r["label"] for r in sorted(rows, key=lambda r: int(r.get("idx", 0)))]
    names = [p.stem for p in root.glob("*.json") if p.name != "task_metadata.json"]
    splits = {n: json.loads((root / f"{n}.json").read_text()) for n in sorted(names)}
    if not splits:
        raise TaskError(f"{root}: no split files (train.json, valid.json, test.json or fold00.json …)")
    rates = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not rates:
        raise TaskError(f"{root}: no audio folder <sample_rate>/<split>/ found")
    rate = sample_rate if sample_rate in rates else rates[0]
    dirs = {n: root / str(rate) / n for n in splits}
    known = set(labels)
    for n, items in splits.items():
        for fname, lab in items.items():
            names_ = [e["label"] for e in lab] if lab and isinstance(lab[0], dict) else list(lab)
            bad = set(names_) - known
            if bad:
                raise TaskError(f"{root / (n + '.json')}: {fname} has labels {sorted(bad)} not in labelvocabulary.csv")
    return HearTask(root, meta, labels, splits, dirs)


# ---------------------------------------------------------------------------- events & metrics


def frames_to_events(
    probs: np.ndarray, timestamps_ms: np.ndarray, labels: Sequence[str], *, threshold: float = 0.5,
    median_ms: float = 250.0, min_ms: float = 125.0,
) -> list[dict[str, Any]]:
    """Frame probabilities ``[T, C]`` at regular ``timestamps_ms [T]`` -> events (``label``,
    ``start``/``end`` in ms), as the HEAR kit's ``create_events_from_prediction``:

    median filter of ``round(median_ms / hop)`` frames over the probabilities (any width, as
    ``scipy.ndimage.median_filter``), frames active where ``prob > threshold`` (strictly), runs of
    active frames become events from the first to the last active timestamp, and events with
    ``end - start < min_ms`` are dropped. The run finding and duration filter are
    :func:`audioflex.evaluate.events.frames_to_events` (whose events end one hop after the last
    frame, hence the shifted minimum duration).
    """
    from scipy.ndimage import median_filter

    from audioflex.evaluate.events import frames_to_events as runs_to_events

    ts = np.asarray(timestamps_ms, dtype=np.float64)
    if len(ts) == 0:
        return []
    p = np.asarray(probs, dtype=np.float64)
    hop = float(np.mean(np.diff(ts))) if len(ts) > 1 else 1.0
    width = int(round(median_ms / hop)) if median_ms else 0
    if width:
        p = median_filter(p, size=(width, 1))
    events = runs_to_events(
        p, hop / 1000.0, labels, thresholds=float(np.nextafter(threshold, np.inf)),  # HEAR: prob > threshold
        min_duration_s=(min_ms + hop) / 1000.0, offset_s=ts[0] / 1000.0,
    )
    return [{"label": e.label, "start": round(1000.0 * e.onset, 6), "end": round(1000.0 * e.offset - hop, 6)}
            for e in events]


def _seconds(events: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[float, float, str]]]:
    """HEAR events (ms dicts) -> ``{file: [(onset_s, offset_s, label)]}`` for the sed_eval wrappers."""
    return {
        f: [(e["start"] / 1000.0, max(e.get("end", e["start"]), e["start"]) / 1000.0, str(e["label"])) for e in evs]
        for f, evs in events.items()
    }


def onset_f_measure(
    reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]],
    collar_ms: float = 200.0, labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """HEAR's ``event_onset_200ms_fms``: onset-only event-based F-measure, micro over classes
    and files, through ``sed_eval`` (:func:`audioflex.evaluate.metrics.onset_event_metrics`).
    Events are dicts with ``label``, ``start`` and ``end`` (ms). A system without any estimated
    event scores 0 (not NaN). Returns ``f_measure``, ``precision``, ``recall``, ``n_ref``, ``n_est``."""
    from audioflex.evaluate.metrics import onset_event_metrics

    files = set(reference) | set(estimated)
    ref = _seconds({f: reference.get(f, []) for f in files})
    est = _seconds({f: estimated.get(f, []) for f in files})
    m = onset_event_metrics(ref, est, t_collar=collar_ms / 1000.0, labels=labels)

    def num(x: float) -> float:
        return 0.0 if math.isnan(x) else float(x)

    return {"f_measure": num(m["f1"]), "precision": num(m["precision"]), "recall": num(m["recall"]),
            "n_ref": sum(len(v) for v in ref.values()), "n_est": sum(len(v) for v in est.values())}


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP over the classes that have positives
    (:func:`audioflex.evaluate.metrics.mean_average_precision`)."""
    from audioflex.evaluate.metrics import mean_average_precision as map_

    return map_(scores, targets)


# ---------------------------------------------------------------------------- the predictor


class ProbeMLP(nn.Module):
    """``[B, D] -> [B, C]``: ``hidden_layers`` x (Linear 1024, Dropout 0.1, ReLU, BatchNorm)."""

    def __init__(self, dim: int, num_classes: int, hidden_layers: int = 1, hidden_dim: int = 1024,
                 dropout: float = 0.1) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for _ in range(hidden_layers):
            mods += [nn.Linear(dim, hidden_dim), nn.Dropout(dropout), nn.ReLU(), nn.BatchNorm1d(hidden_dim)]
            dim = hidden_dim
        mods.append(nn.Linear(dim, num_classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class ProbeConfig:
    """Training grid and limits of the probe."""

    learning_rates: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    hidden_layers: tuple[int, ...] = (1, 2)
    hidden_dim: int = 1024
    max_epochs: int = 500
    patience: int = 20
    batch_size: int = 1024
    seed: int = 0
    min_event_ms: tuple[float, ...] = (125.0, 250.0)
    median_ms: tuple[float, ...] = (250.0,)


def _train(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, *, multilabel: bool, lr: float,
           layers: int, cfg: ProbeConfig) -> ProbeMLP:
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = ProbeMLP(x.shape[1], y.shape[1], layers, cfg.hidden_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    xvt, yvt = torch.from_numpy(xv).float(), torch.from_numpy(yv).float()

    def target(t: torch.Tensor) -> torch.Tensor:
        return t if multilabel else t.argmax(1)

    best, best_state, bad = math.inf, copy.deepcopy(model.state_dict()), 0
    n = len(xt)
    for _ in range(cfg.max_epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            opt.zero_grad()
            loss_fn(model(xt[idx]), target(yt[idx])).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            vloss = float(loss_fn(model(xvt), target(yvt)))
        if vloss < best - 1e-6:
            best, best_state, bad = vloss, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    return model.eval()


def _predict(model: ProbeMLP, x: np.ndarray, multilabel: bool) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
        return (torch.sigmoid(out) if multilabel else torch.softmax(out, -1)).numpy()


# ---------------------------------------------------------------------------- data assembly


@dataclass
class _SplitData:
    x: np.ndarray  # [N, D] (scene) or [sum T, D] (event)
    y: np.ndarray  # [N, C] multi-hot / one-hot
    files: list[str]
    offsets: list[int]  # event: rows of file i are offsets[i]:offsets[i+1]
    timestamps: list[np.ndarray]


def _split_data(task: HearTask, split: str, emb: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> _SplitData:
    items = task.splits[split]
    c = len(task.labels)
    index = {lab: i for i, lab in enumerate(task.labels)}
    xs, ys, offsets, stamps = [], [], [0], []
    for fname, lab in items.items():
        vec, ts = emb[Path(fname).stem]
        if task.is_event:
            y = np.zeros((len(ts), c), np.float32)
            for e in lab:
                y[(ts >= e["start"]) & (ts <= e["end"]), index[e["label"]]] = 1.0
            xs.append(vec)
            stamps.append(ts)
            offsets.append(offsets[-1] + len(ts))
        else:
            y = np.zeros((1, c), np.float32)
            for name in lab:
                y[0, index[name]] = 1.0
            xs.append(vec[None])
        ys.append(y)
    return _SplitData(np.concatenate(xs), np.concatenate(ys), list(items), offsets, stamps)


def _merge(parts: Sequence[_SplitData]) -> _SplitData:
    offs = [0]
    for p in parts:
        offs += [offs[-1] + o for o in p.offsets[1:]]
    return _SplitData(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                      [f for p in parts for f in p.files], offs, [t for p in parts for t in p.timestamps])


def _score_multi(task: HearTask, d: _SplitData, probs: np.ndarray, pp: tuple[float, float] | None,
                 splits: Sequence[str]) -> float:
    if not task.is_event:
        if task.multilabel:
            return mean_average_precision(probs, d.y)
        return float((probs.argmax(1) == d.y.argmax(1)).mean())
    refs = {f: ev for s in splits for f, ev in task.splits[s].items()}
    median_ms, min_ms = pp or (250.0, 125.0)
    est = {}
    for i, f in enumerate(d.files):
        a, b = d.offsets[i], d.offsets[i + 1]
        est[f] = frames_to_events(probs[a:b], d.timestamps[i], task.labels, median_ms=median_ms, min_ms=min_ms)
    return onset_f_measure({f: refs[f] for f in d.files}, est, labels=task.labels)["f_measure"]


def _run_fold(task: HearTask, data: dict[str, _SplitData], train: Sequence[str], valid: str, test: str,
              cfg: ProbeConfig) -> dict[str, Any]:
    tr = _merge([data[s] for s in train])
    va, te = data[valid], data[test]
    mean, std = tr.x.mean(0), tr.x.std(0) + 1e-5
    xt, xv, xte = (tr.x - mean) / std, (va.x - mean) / std, (te.x - mean) / std
    pps: list[tuple[float, float] | None] = (
        [(m, k) for m in cfg.median_ms for k in cfg.min_event_ms] if task.is_event else [None]
    )
    best: tuple[float, Any, Any, Any] | None = None
    grid = []
    for layers in cfg.hidden_layers:
        for lr in cfg.learning_rates:
            model = _train(xt, tr.y, xv, va.y, multilabel=task.multilabel, lr=lr, layers=layers, cfg=cfg)
            pv = _predict(model, xv, task.multilabel)
            for pp in pps:
                s = _score_multi(task, va, pv, pp, [valid])
                grid.append({"lr": lr, "hidden_layers": layers, "postprocessing": pp, "valid_score": s})
                if best is None or s > best[0]:
                    best = (s, model, pp, {"lr": lr, "hidden_layers": layers})
    assert best is not None
    s_valid, model, pp, hp = best
    test_score = _score_multi(task, te, _predict(model, xte, task.multilabel), pp, [test])
    return {"test": test, "valid": valid, "test_score": test_score, "valid_score": s_valid, **hp,
            "postprocessing": {"median_ms": pp[0], "min_event_ms": pp[1]} if pp else None, "grid": grid}


# ---------------------------------------------------------------------------- entry point


def metric_name(task: HearTask) -> str:
    if task.is_event:
        return "event_onset_200ms_fms"
    return "mAP" if task.multilabel else "top1_acc"


def probe_task(
    task_dir: str | Path,
    checkpoint: str | Path,
    *,
    cache_dir: str | Path | None = None,
    config: ProbeConfig | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    model: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a checkpoint's embeddings on a HEAR task with the shallow probe.

    Args:
        task_dir: HEAR task directory (see the module docstring).
        checkpoint: audioflex checkpoint directory.
        cache_dir: where embeddings are cached (default ``<task_dir>/embeddings/<model name>``);
            reruns reuse them (a change of options in the same folder raises).
        config: probe grid and limits (:class:`ProbeConfig`).
        device: where the embedding model runs.
        progress: progress bars while embedding.
        model: an already loaded :class:`~audioflex.hear.EmbeddingModel`.
        **options: embedding options (``hop_ms``, ``layers``, ...; :class:`~audioflex.hear.EmbedOptions`).

    Returns:
        JSON-ready dict: ``task``, ``metric``, ``score`` (test; mean over folds), per-fold details
        (chosen learning rate, depth, post-processing, validation score, the grid).
    """
    from audioflex.embed import embed_files, load_embeddings
    from audioflex.hear import load_model

    cfg = config or ProbeConfig()
    emb_model = model if model is not None else load_model(str(checkpoint), device=device, **options)
    task = read_task(task_dir, emb_model.sample_rate)
    name = getattr(emb_model.net, "model_name", "model")
    cache = Path(cache_dir) if cache_dir else task.root / "embeddings" / name
    kind = "timestamp" if task.is_event else "scene"
    data = {}
    for split, items in task.splits.items():
        files = [task.audio_dirs[split] / f for f in items]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise TaskError(f"{task.root}: {len(missing)} audio file(s) of split {split!r} missing, e.g. {missing[0]}")
        rep = embed_files(files, checkpoint, cache / split, kind=kind, progress=progress, model=emb_model)
        if rep.failed:
            raise TaskError(f"{task.root}: unreadable audio in split {split!r}: {rep.failed[0]}")
        data[split] = _split_data(task, split, load_embeddings(cache / split))
    folds = task.folds
    if folds:
        if len(folds) < 3:
            raise TaskError(f"{task.root}: k-fold tasks need at least 3 folds, got {folds}")
        runs = []
        for i, test in enumerate(folds):
            valid = folds[(i + 1) % len(folds)]
            train = [f for f in folds if f not in (test, valid)]
            runs.append(_run_fold(task, data, train, valid, test, cfg))
    else:
        need = {"train", "valid", "test"} - set(task.splits)
        if need:
            raise TaskError(f"{task.root}: missing split file(s) {sorted(need)}.json (or use fold00.json …)")
        runs = [_run_fold(task, data, ["train"], "valid", "test", cfg)]
    score = float(np.mean([r["test_score"] for r in runs]))
    return {
        "task": task.metadata.get("task_name", task.root.name),
        "embedding_type": kind,
        "metric": metric_name(task),
        "score": score,
        "folds": runs,
        "model": emb_model.describe(),
    }

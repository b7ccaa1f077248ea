"""Shallow-probe evaluation on HEAR-format tasks (``audioflex probe``), as the HEAR kit does it.

Task directory (heareval layout): ``task_metadata.json``, ``labelvocabulary.csv`` (``idx,label``),
``<split>.json`` per split (scene: ``{"a.wav": ["dog"]}``; event: ``{"a.wav": [{"label": "beep",
"start": 865.4, "end": 1379.8}]}`` in ms) and the audio in ``<sample_rate>/<split>/``. Splits are
``train``/``valid``/``test`` or folds ``fold00`` … (``split_mode`` containing ``kfold``, or fold
files present): fold ``i`` is tested with fold ``i + 1`` as validation and the rest as training,
and the score is the mean over folds.

Protocol (the HEAR kit's ``heareval.predictions``, re-implemented without PyTorch Lightning):
frozen embeddings (scene embeddings for scene tasks, timestamp embeddings for event tasks; cached
on disk, resumable; or read from a directory the kit's embedding runner wrote), an MLP (1 or 2
hidden layers of 1024: Linear -> BatchNorm -> Dropout(0.1) -> ReLU; Xavier initialisation), Adam,
softmax cross-entropy (multiclass) or sigmoid BCE (multilabel, events), validation every 3 epochs
with early stopping (patience 20) on the task's first score, 8 grid points (learning rate x depth x
initialisation) chosen on the first data split and retrained on the others. Scores are the task's
``evaluation`` list: top-1 accuracy, mAP, d', AUC, and for events the onset (or onset+offset)
F-measure through sed_eval with the kit's post-processing (median filter over the probabilities,
threshold > 0.5, minimum event length; picked on validation) or the 1 s segment error rate.
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


def read_task(root: str | Path, sample_rate: int | None = None, *, audio: bool = True) -> HearTask:
    """Read a HEAR task directory; audio from ``<sample_rate>/`` (else the first rate present;
    ``audio=False``: a directory without audio, as the HEAR kit's embedding output)."""
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
    listed = meta.get("splits")
    if isinstance(listed, list) and listed:
        names = [str(n["split"] if isinstance(n, dict) else n) for n in listed]
        absent = [n for n in names if not (root / f"{n}.json").is_file()]
        if absent:
            raise TaskError(f"{root}: task_metadata.json lists split(s) {absent} without their <split>.json")
    else:
        names = [p.stem for p in root.glob("*.json") if p.name != "task_metadata.json" and "." not in p.stem]
    splits = {n: json.loads((root / f"{n}.json").read_text()) for n in sorted(names)}
    if not splits:
        raise TaskError(f"{root}: no split files (train.json, valid.json, test.json or fold00.json …)")
    rates = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not rates and audio:
        raise TaskError(f"{root}: no audio folder <sample_rate>/<split>/ found")
    rate = sample_rate if sample_rate in rates else (rates[0] if rates else sample_rate)
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


def hear_events(
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


def _in_seconds(reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]]) -> tuple[
        dict[str, list[tuple[float, float, str]]], dict[str, list[tuple[float, float, str]]]]:
    """HEAR events (ms dicts) of reference and estimate -> ``{file: [(onset_s, offset_s, label)]}``
    each, over the files of either (a file missing from one side has no events there), for the
    sed_eval wrappers."""
    files = set(reference) | set(estimated)

    def sec(events: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[float, float, str]]]:
        return {f: [(e["start"] / 1000.0, max(e.get("end", e["start"]), e["start"]) / 1000.0, str(e["label"]))
                    for e in events.get(f, [])] for f in files}

    return sec(reference), sec(estimated)


def _nan0(x: float) -> float:
    """NaN -> 0 (how the kit ranks an unscorable validation)."""
    return 0.0 if math.isnan(x) else float(x)


def onset_f_measure(
    reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]],
    collar_ms: float = 200.0, labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """HEAR's ``event_onset_200ms_fms``: onset-only event-based F-measure, micro over classes
    and files, through ``sed_eval`` (:func:`audioflex.evaluate.metrics.onset_event_metrics`).
    Events are dicts with ``label``, ``start`` and ``end`` (ms). A system without any estimated
    event scores 0 (not NaN). Returns ``f_measure``, ``precision``, ``recall``, ``n_ref``, ``n_est``."""
    from audioflex.evaluate.metrics import onset_event_metrics

    ref, est = _in_seconds(reference, estimated)
    m = onset_event_metrics(ref, est, t_collar=collar_ms / 1000.0, labels=labels)
    return {"f_measure": _nan0(m["f1"]), "precision": _nan0(m["precision"]), "recall": _nan0(m["recall"]),
            "n_ref": sum(len(v) for v in ref.values()), "n_est": sum(len(v) for v in est.values())}


# ---------------------------------------------------------------------------- scores

_EVENT_PARAMS: dict[str, dict[str, Any]] = {
    "event_onset_200ms_fms": {"t_collar": 0.2, "evaluate_offset": False},
    "event_onset_50ms_fms": {"t_collar": 0.05, "evaluate_offset": False},
    "event_onset_offset_50ms_20perc_fms": {"t_collar": 0.05, "evaluate_offset": True, "percentage_of_length": 0.2},
}
_SCENE_SCORES = ("top1_acc", "pitch_acc", "chroma_acc", "mAP", "d_prime", "aucroc")
SCORES = _SCENE_SCORES + tuple(_EVENT_PARAMS) + ("segment_1s_er",)


def maximize(score: str) -> bool:
    """Whether a larger ``score`` is better (all HEAR scores but ``segment_1s_er``)."""
    return score != "segment_1s_er"


def scene_score(name: str, probs: np.ndarray, targets: np.ndarray) -> float:
    """A HEAR scene score of probabilities ``[N, C]`` against multi-hot targets ``[N, C]``:
    ``top1_acc``/``pitch_acc`` (argmax hits), ``chroma_acc`` (argmax mod 12), ``mAP`` and ``aucroc``
    (scikit-learn, macro over classes), ``d_prime`` (mean over classes of ``sqrt(2) * ppf(AUC)``);
    NaN where scikit-learn cannot score (a class without positives for the AUC scores)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if name in ("top1_acc", "pitch_acc"):
        return float(np.mean(probs.argmax(1) == targets.argmax(1)))
    if name == "chroma_acc":
        return float(np.mean(probs.argmax(1) % 12 == targets.argmax(1) % 12))
    if name == "mAP":
        return float(average_precision_score(targets, probs, average="macro"))
    try:
        if name == "aucroc":
            return float(roc_auc_score(targets, probs, average="macro"))
        if name == "d_prime":
            from scipy.stats import norm

            return float(np.mean(norm.ppf(roc_auc_score(targets, probs, average=None)) * math.sqrt(2.0)))
    except ValueError:
        return float("nan")
    raise ValueError(f"unknown scene score {name!r}; known: {_SCENE_SCORES}")


def event_score(name: str, reference: dict[str, list[dict[str, Any]]], estimated: dict[str, list[dict[str, Any]]],
                labels: Sequence[str], *, nan_as_zero: bool = True) -> float:
    """A HEAR event score (sed_eval, micro over classes and files; events in ms dicts): the
    onset (and offset) F-measures of ``_EVENT_PARAMS`` or ``segment_1s_er`` (1 s segment error
    rate, lower is better). A system without estimated events scores F = 0 (``nan_as_zero``) or
    NaN (sed_eval's value)."""
    from audioflex.evaluate.metrics import event_based_metrics, segment_based_metrics

    ref, est = _in_seconds(reference, estimated)
    if name == "segment_1s_er":
        return float(segment_based_metrics(ref, est, time_resolution=1.0, labels=labels)["error_rate"])
    if name not in _EVENT_PARAMS:
        raise ValueError(f"unknown event score {name!r}; known: {sorted(_EVENT_PARAMS) + ['segment_1s_er']}")
    p = {"percentage_of_length": 0.5, **_EVENT_PARAMS[name]}
    m = event_based_metrics(ref, est, evaluate_onset=True, labels=labels, zero_score_empty=False, **p)
    return _nan0(m["f1"]) if nan_as_zero else float(m["f1"])


def task_scores(task: HearTask) -> list[str]:
    """The task's scores (``evaluation`` in its metadata; the first is the one optimised), or the
    HEAR default for its type."""
    names = list(task.metadata.get("evaluation") or [metric_name(task)])
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise TaskError(f"{task.root / 'task_metadata.json'}: unknown evaluation score(s) {unknown}; known: {SCORES}")
    kind = set(names) & (set(_EVENT_PARAMS) | {"segment_1s_er"})
    if bool(kind) != task.is_event or (kind and len(kind) != len(names)):
        raise TaskError(f"{task.root / 'task_metadata.json'}: scores {names} do not fit a "
                        f"{'event' if task.is_event else 'scene'} task")
    return names


# ---------------------------------------------------------------------------- the predictor


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


@dataclass
class _Fit:
    model: ProbeMLP
    valid_score: float
    epoch: int
    postprocessing: tuple[float, float] | None
    conf: dict[str, Any]
    epochs: int = 0  # epochs trained (the stop)


def _fit(task: HearTask, tr: _SplitData, va: _SplitData, valid: Sequence[str], conf: dict[str, Any],
         cfg: ProbeConfig, primary: str, by_loss: bool) -> _Fit:
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
    best = _Fit(copy.deepcopy(model).eval(), math.nan, -1, None, conf)  # no validation yet
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
        score, pp = _best_score(task, va, probs, valid, primary, cfg)
        key = -float(loss_fn(logits, target(yv))) if by_loss else sign * score
        if math.isnan(key):
            # the kit (Lightning's EarlyStopping, check_finite) stops on a NaN score; before any
            # finite validation the kit fails ("No score"), so there NaN counts as 0 instead
            if cfg.stop_on_nan and best.epoch >= 0:
                break
            key = -math.inf if by_loss else sign * 0.0
        if key > best_key:
            best_key, bad = key, 0
            best = _Fit(copy.deepcopy(model).eval(), score, epoch, pp, conf)
        else:
            bad += 1
            if bad >= int(conf["patience"]):
                break
    best.epochs = epoch + 1
    return best


def _predict(model: ProbeMLP, x: np.ndarray, multilabel: bool) -> np.ndarray:
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(x).float())
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
    """Rows and targets of a split; ``emb`` maps the split's file names to (vectors, timestamps).
    Event targets: a timestamp is labelled with the events with ``start <= t <= end`` (the kit's
    interval tree over ``[start, end + 0.0001)``)."""
    items = task.splits[split]
    c = len(task.labels)
    index = {lab: i for i, lab in enumerate(task.labels)}
    xs, ys, offsets, stamps = [], [], [0], []
    for fname, lab in items.items():
        if fname not in emb:
            raise TaskError(f"{task.root}: no embedding for {fname!r} of split {split!r}")
        vec, ts = emb[fname]
        if task.is_event:
            if ts is None or vec.ndim != 2 or len(ts) != len(vec):
                raise TaskError(f"{task.root}: {fname!r} needs timestamp embeddings [T, D] with T timestamps")
            y = np.zeros((len(ts), c), np.float32)
            for e in lab:
                y[(ts >= e["start"]) & (ts < e["end"] + 0.0001), index[e["label"]]] = 1.0
            xs.append(vec)
            stamps.append(np.asarray(ts, np.float64))
            offsets.append(offsets[-1] + len(ts))
        else:
            if vec.ndim != 1:
                raise TaskError(f"{task.root}: {fname!r} needs a scene embedding [D], got shape {vec.shape}")
            if not task.multilabel and len(lab) != 1:
                raise TaskError(f"{task.root}: {fname!r} of multiclass split {split!r} has {len(lab)} labels, not 1")
            y = np.zeros((1, c), np.float32)
            for name in lab:
                y[0, index[str(name)]] = 1.0
            xs.append(vec[None])
        ys.append(y)
    x = np.concatenate(xs).astype(np.float32)
    if not np.isfinite(x).all():
        raise TaskError(f"{task.root}: split {split!r} has NaN/Inf embeddings; fix the model or the audio")
    return _SplitData(x, np.concatenate(ys), list(items), offsets, stamps)


def _merge(parts: Sequence[_SplitData]) -> _SplitData:
    offs = [0]
    for p in parts:
        offs += [offs[-1] + o for o in p.offsets[1:]]
    return _SplitData(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                      [f for p in parts for f in p.files], offs, [t for p in parts for t in p.timestamps])


def _events(task: HearTask, d: _SplitData, probs: np.ndarray, pp: tuple[float, float]) -> dict[str, list[dict]]:
    median_ms, min_ms = pp
    return {f: hear_events(probs[d.offsets[i] : d.offsets[i + 1]], d.timestamps[i], task.labels,
                           median_ms=median_ms, min_ms=min_ms) for i, f in enumerate(d.files)}


def _score(task: HearTask, name: str, d: _SplitData, probs: np.ndarray, pp: tuple[float, float] | None,
           splits: Sequence[str], *, raw: bool = False) -> float:
    if not task.is_event:
        return scene_score(name, probs, d.y)
    refs = {f: ev for s in splits for f, ev in task.splits[s].items()}
    est = _events(task, d, probs, pp or (250.0, 125.0))
    return event_score(name, {f: refs[f] for f in d.files}, est, task.labels, nan_as_zero=not raw)


def _best_score(task: HearTask, d: _SplitData, probs: np.ndarray, splits: Sequence[str], primary: str,
                cfg: ProbeConfig) -> tuple[float, tuple[float, float] | None]:
    """The primary score and, for events, the best post-processing of the grid (NaN counts as 0)."""
    if not task.is_event:
        return _score(task, primary, d, probs, None, splits), None
    # the kit sorts (score, postprocessing) pairs in descending order: ties go to the larger
    # setting, and NaN counts as 0 (also for error rates, where the kit's choice is the largest)
    scored = [(_score(task, primary, d, probs, pp, splits, raw=True), pp) for pp in postprocessing_grid(task, cfg)]
    s, pp = max(scored, key=lambda t: (_nan0(t[0]), t[1]))
    return s, pp


def _standardise(tr: _SplitData, *others: _SplitData) -> None:
    mean, std = tr.x.mean(0), tr.x.std(0) + 1e-5
    for d in (tr, *others):
        d.x = (d.x - mean) / std


# ---------------------------------------------------------------------------- entry point


def metric_name(task: HearTask) -> str:
    """The HEAR default score of a task type (used when its metadata lists no ``evaluation``)."""
    if task.is_event:
        return "event_onset_200ms_fms"
    return "mAP" if task.multilabel else "top1_acc"


def data_splits(task: HearTask) -> list[dict[str, Any]]:
    """``[{"train": [...], "valid": name, "test": name}]``: one for train/valid/test tasks; for k
    folds, fold ``i`` is tested with fold ``i + 1`` as validation and the rest for training."""
    folds = task.folds
    if folds:
        if len(folds) < 3:
            raise TaskError(f"{task.root}: k-fold tasks need at least 3 folds, got {folds}")
        return [{"test": t, "valid": folds[(i + 1) % len(folds)],
                 "train": [f for f in folds if f not in (t, folds[(i + 1) % len(folds)])]}
                for i, t in enumerate(folds)]
    need = {"train", "valid", "test"} - set(task.splits)
    if need:
        raise TaskError(f"{task.root}: missing split file(s) {sorted(need)}.json (or use fold00.json …)")
    return [{"train": ["train"], "valid": "valid", "test": "test"}]


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
    data = {s: _split_data(task, s, embeddings[s]) for s in task.splits}
    splits = data_splits(task)
    confs = grid(task, cfg)

    def prepared(sp: dict[str, Any]) -> tuple[_SplitData, _SplitData, _SplitData]:
        tr = _merge([data[s] for s in sp["train"]])
        va, te = copy.copy(data[sp["valid"]]), copy.copy(data[sp["test"]])
        if cfg.standardize:
            _standardise(tr, va, te)
        return tr, va, te

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(confs) + len(splits) - 1, unit="fit", desc="probe")
    tried = []
    first = prepared(splits[0])
    tr, va, _ = first
    for i, conf in enumerate(confs):
        fit = _fit(task, tr, va, [splits[0]["valid"]], conf, cfg, primary, by_loss)
        logger.info("grid point %d/%d (lr %g, %d hidden, %s): valid %s %.4f at epoch %d of %d", i + 1, len(confs),
                    conf["lr"], conf["hidden_layers"], conf["initialization"], primary, fit.valid_score, fit.epoch,
                    fit.epochs)
        tried.append(fit)
        if bar is not None:
            bar.update(1)
    sign = 1.0 if maximize(primary) else -1.0
    best = max(tried, key=lambda f: sign * _nan0(f.valid_score))  # the first of equals, as the kit's stable sort
    best_conf = best.conf
    runs = []
    for i, sp in enumerate(splits):
        tr, va, te = first if i == 0 else prepared(sp)
        if i == 0:
            fit = best
        else:
            fit = _fit(task, tr, va, [sp["valid"]], best_conf, cfg, primary, by_loss)
            if bar is not None:
                bar.update(1)
        probs = _predict(fit.model, te.x, task.multilabel)
        scores = {n: _score(task, n, te, probs, fit.postprocessing, [sp["test"]]) for n in names}
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


def read_heareval_embeddings(root: str | Path) -> tuple[HearTask, dict[str, dict[str, tuple[np.ndarray, Any]]]]:
    """A task directory written by the HEAR kit's embedding runner (``heareval.embeddings.runner``:
    ``task_metadata.json``, ``labelvocabulary.csv``, ``<split>.json`` and
    ``<split>/<file>.embedding.npy`` with ``<file>.timestamps.json`` for event tasks) -> the task
    and ``{split: {file: (vectors, timestamps ms or None)}}``."""
    task = read_task(root, audio=False)
    emb: dict[str, dict[str, tuple[np.ndarray, Any]]] = {}
    for split, items in task.splits.items():
        emb[split] = {}
        for fname in items:
            npy = task.root / split / f"{fname}.embedding.npy"
            if not npy.is_file():
                raise TaskError(f"{npy}: missing; run the HEAR embedding runner on split {split!r} again")
            ts_file = task.root / split / f"{fname}.timestamps.json"
            ts = np.asarray(json.loads(ts_file.read_text()), np.float64) if ts_file.is_file() else None
            emb[split][fname] = (np.load(npy).astype(np.float32), ts)
    return task, emb


def probe_heareval_dir(root: str | Path, config: ProbeConfig | None = None, *,
                       progress: bool = False) -> dict[str, Any]:
    """:func:`probe_embeddings` on a HEAR kit embedding directory (see
    :func:`read_heareval_embeddings`): scores any HEAR model's embeddings, and ours next to the kit's."""
    task, emb = read_heareval_embeddings(root)
    return probe_embeddings(task, emb, config, progress=progress)

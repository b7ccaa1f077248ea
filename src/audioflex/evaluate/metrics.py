"""Evaluation metrics: clip-level (accuracy, top-k, mAP, ROC-AUC, d') and sound event detection
(event- and segment-based F1 / error rate via ``sed_eval``; PSDS via ``psds_eval`` if installed).

Clip metrics take numpy arrays (tensors are converted) and return Python floats:

* ``scores [N, C]``: one score per clip and class (logits or probabilities; only their order
  matters).
* ``targets``: class indices ``[N]`` (single-label) or one-/multi-/soft-hot ``[N, C]``. For the
  ranking metrics (AP, AUC) a class is positive where ``target >= 0.5``.

Conventions for undefined cases (documented, never silent errors):

* mAP is the macro average over classes with at least one positive; mean AUC over classes with
  at least one positive and one negative (as in AudioSet evaluations). Classes left out are
  ``NaN`` in the per-class arrays. If no class qualifies the mean is ``NaN`` and a warning is
  logged.
* d' is computed from the mean AUC, ``sqrt(2) * Phi^-1(AUC)``; AUC 1 gives ``inf``, 0.5 gives 0.
* Accuracy: a clip is a hit when its highest-scoring class (ties: lowest index) is one of the
  target's highest-valued classes (the class for index/one-hot targets, any positive for
  multi-hot); a clip whose target row is all zeros is a miss.

SED metrics take ``{filename: [events]}`` mappings (``Event`` values, dicts or tuples; see
``audioflex.evaluate.events.as_event``) for the reference and the estimate. Files present in only
one of them count as having no events in the other.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtri

from audioflex.evaluate.events import Event, as_event

logger = logging.getLogger(__name__)

__all__ = [
    "accuracy",
    "class_auc",
    "class_average_precision",
    "clip_metrics",
    "d_prime",
    "event_based_metrics",
    "mean_auc",
    "mean_average_precision",
    "onset_event_metrics",
    "psds",
    "segment_based_metrics",
    "top_k_accuracy",
]


# ---------------------------------------------------------------------------------- validation
def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor on any device / dtype
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _check_scores(scores: Any) -> np.ndarray:
    s = _to_numpy(scores).astype(np.float64, copy=False)
    if s.ndim != 2:
        raise ValueError(f"scores must be [N, C] (clips x classes), got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores is empty (shape {s.shape}); need at least one clip and one class")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contains NaN or inf; check the model outputs")
    return s


def _target_matrix(targets: Any, n: int, c: int) -> np.ndarray:
    """Targets as a float ``[N, C]`` matrix (index targets become one-hot)."""
    t = _to_numpy(targets)
    if t.ndim == 1:
        if t.shape[0] != n:
            raise ValueError(f"targets has {t.shape[0]} entries but scores has {n} clips")
        if t.size and not np.all(np.equal(np.mod(t, 1), 0)):
            raise ValueError("1-D targets must be integer class indices; give [N, C] for soft/multi-hot targets")
        idx = t.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= c):
            raise ValueError(f"target class indices must be in [0, {c}), got range [{idx.min()}, {idx.max()}]")
        out = np.zeros((n, c), dtype=np.float64)
        out[np.arange(n), idx] = 1.0
        return out
    if t.ndim == 2:
        if t.shape != (n, c):
            raise ValueError(f"targets shape {t.shape} does not match scores shape {(n, c)}")
        t = t.astype(np.float64, copy=False)
        if not np.all(np.isfinite(t)):
            raise ValueError("targets contains NaN or inf")
        return t
    raise ValueError(f"targets must be indices [N] or a [N, C] matrix, got shape {t.shape}")


# --------------------------------------------------------------------------------- clip metrics
def top_k_accuracy(scores: Any, targets: Any, k: int = 5) -> float:
    """Fraction of clips with a target class among the ``k`` highest scores (``k`` is capped at
    ``C``). ``scores [N, C]``, ``targets [N]`` indices or ``[N, C]``; see the module doc for the hit rule."""
    s = _check_scores(scores)
    n, c = s.shape
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(int(k), c)
    t = _target_matrix(targets, n, c)
    row_max = t.max(axis=1, keepdims=True)
    positive = (t >= row_max - 1e-12) & (row_max > 0)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(positive, top, axis=1).any(axis=1)
    return float(hits.mean())


def accuracy(scores: Any, targets: Any) -> float:
    """Top-1 accuracy of ``scores [N, C]`` against ``targets`` (``[N]`` indices or ``[N, C]``)."""
    return top_k_accuracy(scores, targets, k=1)


def _binary_targets(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _check_scores(scores)
    return s, _target_matrix(targets, *s.shape) >= 0.5


def class_average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Per-class average precision ``[C]`` (scikit-learn's step-wise AP); ``NaN`` for classes with
    no positive."""
    from sklearn.metrics import average_precision_score

    s, y = _binary_targets(scores, targets)
    out = np.full(s.shape[1], np.nan)
    for j in np.flatnonzero(y.any(axis=0)):
        out[j] = average_precision_score(y[:, j], s[:, j])
    return out


def class_auc(scores: Any, targets: Any) -> np.ndarray:
    """Per-class ROC-AUC ``[C]``; ``NaN`` for classes without both positives and negatives."""
    from sklearn.metrics import roc_auc_score

    s, y = _binary_targets(scores, targets)
    out = np.full(s.shape[1], np.nan)
    for j in np.flatnonzero(y.any(axis=0) & (~y).any(axis=0)):
        out[j] = roc_auc_score(y[:, j], s[:, j])
    return out


def _nanmean(values: np.ndarray, what: str) -> float:
    if not np.any(np.isfinite(values)):
        logger.warning("%s is undefined: no class has the positives/negatives it needs; returning NaN", what)
        return float("nan")
    return float(np.nanmean(values))


def mean_average_precision(scores: Any, targets: Any) -> float:
    """Macro mAP over the classes with at least one positive (``NaN`` if there is none)."""
    return _nanmean(class_average_precision(scores, targets), "mAP")


def mean_auc(scores: Any, targets: Any) -> float:
    """Macro ROC-AUC over the classes with at least one positive and one negative (``NaN`` if none)."""
    return _nanmean(class_auc(scores, targets), "mean AUC")


def d_prime(auc: float | np.ndarray) -> float | np.ndarray:
    """Sensitivity index from an ROC-AUC: ``sqrt(2) * Phi^-1(auc)`` (``inf`` at 1, ``-inf`` at 0,
    ``NaN`` for NaN); arrays work element-wise."""
    a = np.asarray(auc, dtype=np.float64)
    if np.any((a < 0) | (a > 1)):
        raise ValueError(f"AUC must be in [0, 1], got {auc}")
    out = math.sqrt(2.0) * ndtri(a)
    return float(out) if out.ndim == 0 else out


def clip_metrics(scores: Any, targets: Any, multilabel: bool, *, top_k: int = 5) -> dict[str, Any]:
    """All clip metrics of a task in one dict.

    Single-label: ``accuracy``, ``top{k}_accuracy`` (when ``C > k``), ``mAP``, ``mAUC``, ``d_prime``;
    multi-label: ``mAP``, ``mAUC``, ``d_prime``. Plus ``primary`` (the value of the headline
    metric: ``accuracy`` single-label, ``mAP`` multi-label) and ``primary_metric`` (its name, the
    only non-float entry).
    """
    s = _check_scores(scores)
    out: dict[str, Any] = {}
    if not multilabel:
        out["accuracy"] = accuracy(s, targets)
        if s.shape[1] > top_k:
            out[f"top{top_k}_accuracy"] = top_k_accuracy(s, targets, top_k)
    out["mAP"] = mean_average_precision(s, targets)
    out["mAUC"] = mean_auc(s, targets)
    out["d_prime"] = d_prime(out["mAUC"]) if math.isfinite(out["mAUC"]) else float("nan")
    name = "mAP" if multilabel else "accuracy"
    out["primary"] = out[name]
    out["primary_metric"] = name
    return out


# ---------------------------------------------------------------------------------- SED metrics
EventLists = Mapping[str, Iterable[Any]]


def _sed_eval() -> Any:
    from audioflex.evaluate.thirdparty import import_sed_eval

    return import_sed_eval()


def _prepare(
    reference: EventLists, estimated: EventLists, labels: Sequence[str] | None
) -> tuple[list[str], dict[str, list[Event]], dict[str, list[Event]], list[str]]:
    if not isinstance(reference, Mapping) or not isinstance(estimated, Mapping):
        raise TypeError(
            "reference and estimated must be {filename: [events]} mappings "
            "(see audioflex.evaluate.events.read_events / events_by_file)"
        )
    ref = {str(k): [as_event(e, where=f"reference[{k!r}]") for e in v] for k, v in reference.items()}
    est = {str(k): [as_event(e, where=f"estimated[{k!r}]") for e in v] for k, v in estimated.items()}
    if ref and est and not set(ref) & set(est):
        raise ValueError(
            f"reference and estimated share no filename (e.g. {next(iter(ref))!r} vs {next(iter(est))!r}); "
            "use the same naming (full paths vs basenames)"
        )
    extra = sorted(set(est) - set(ref))
    if extra and ref:
        logger.warning("%d estimated file(s) not in the reference (scored as having no reference events), e.g. %s",
                       len(extra), extra[0])
    found = sorted({e.label for evs in (*ref.values(), *est.values()) for e in evs})
    if labels is None:
        label_list = found
    else:
        label_list = [str(x) for x in labels]
        unknown = sorted(set(found) - set(label_list))
        if unknown:
            raise ValueError(f"event label(s) {unknown} are not in labels={label_list[:10]}")
    files = sorted(set(ref) | set(est))
    return label_list, ref, est, files


def _dicts(events: Sequence[Event], filename: str) -> list[dict[str, Any]]:
    return [{"filename": filename, "onset": e.onset, "offset": e.offset, "event_label": e.label} for e in events]


def _run(
    metric: Any,
    ref: Mapping[str, list[Event]],
    est: Mapping[str, list[Event]],
    files: Sequence[str],
    labels: Sequence[str],
    zero_score_empty: bool,
    durations: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Feed a sed_eval metric file by file and summarise it."""
    # sed_eval reads this attribute when scoring; SegmentBasedMetrics does not take it as an argument
    metric.empty_system_output_handling = "zero_score" if zero_score_empty else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN class lists
        for f in files:
            r_ev, e_ev = _dicts(ref.get(f, []), f), _dicts(est.get(f, []), f)
            if durations is None:
                metric.evaluate(r_ev, e_ev)
            else:
                metric.evaluate(r_ev, e_ev, evaluated_length_seconds=float(durations[f]))
        return _summarise(metric.results(), labels, len(files))


def _summarise(r: Mapping[str, Any], labels: Sequence[str], files: int) -> dict[str, Any]:
    overall, avg = r["overall"], r["class_wise_average"]
    out: dict[str, Any] = {
        "f1": float(overall["f_measure"]["f_measure"]),
        "precision": float(overall["f_measure"]["precision"]),
        "recall": float(overall["f_measure"]["recall"]),
        "error_rate": float(overall["error_rate"]["error_rate"]),
        "deletion_rate": float(overall["error_rate"]["deletion_rate"]),
        "insertion_rate": float(overall["error_rate"]["insertion_rate"]),
        "substitution_rate": float(overall["error_rate"].get("substitution_rate", 0.0)),
        "f1_macro": float(avg["f_measure"].get("f_measure", float("nan"))),
        "precision_macro": float(avg["f_measure"].get("precision", float("nan"))),
        "recall_macro": float(avg["f_measure"].get("recall", float("nan"))),
        "error_rate_macro": float(avg["error_rate"].get("error_rate", float("nan"))),
        "num_files": files,
        "class_wise": {},
    }
    for lab in labels:
        cw = r["class_wise"][lab]
        out["class_wise"][lab] = {
            "f1": float(cw["f_measure"]["f_measure"]),
            "precision": float(cw["f_measure"]["precision"]),
            "recall": float(cw["f_measure"]["recall"]),
            "error_rate": float(cw["error_rate"]["error_rate"]),
            "n_ref": int(cw["count"]["Nref"]),
            "n_sys": int(cw["count"]["Nsys"]),
        }
    return out


def event_based_metrics(
    reference: EventLists,
    estimated: EventLists,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    *,
    evaluate_onset: bool = True,
    evaluate_offset: bool = True,
    labels: Sequence[str] | None = None,
    zero_score_empty: bool = True,
) -> dict[str, Any]:
    """Event-based metrics (``sed_eval.sound_event.EventBasedMetrics``, optimal matching).

    An estimated event matches a reference event of the same label when its onset is within
    ``t_collar`` s and (if ``evaluate_offset``) its offset within ``max(t_collar,
    percentage_of_length * reference length)``. Defaults are the DCASE task 4 settings.

    Returns floats ``f1``/``precision``/``recall``/``error_rate`` (+ deletion/insertion/substitution
    rates) micro-averaged over all events, ``*_macro`` class-wise averages (classes absent from both
    reference and estimate are left out of the macro F1), ``num_files`` and ``class_wise``
    (``{label: {f1, precision, recall, error_rate, n_ref, n_sys}}``). ``labels`` defaults to all
    labels present. sed_eval adds a tiny epsilon to denominators (values can differ by ~1e-15).

    ``zero_score_empty`` (default, as the DESED baseline): a class (or the whole system) without
    any estimated event gets precision 0 and F1 0. Otherwise (sed_eval's default) its precision and
    F1 are NaN and the class drops out of the macro averages, which flatters silent systems.
    With no events at all in either input, recall and F1 are NaN (nothing to score).
    """
    sed_eval = _sed_eval()
    label_list, ref, est, files = _prepare(reference, estimated, labels)
    if not (evaluate_onset or evaluate_offset):
        raise ValueError("event_based_metrics: evaluate at least the onset or the offset")
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=label_list,
        t_collar=float(t_collar),
        percentage_of_length=float(percentage_of_length),
        evaluate_onset=evaluate_onset,
        evaluate_offset=evaluate_offset,
    )
    return _run(metric, ref, est, files, label_list, zero_score_empty, None)


def onset_event_metrics(
    reference: EventLists,
    estimated: EventLists,
    t_collar: float = 0.2,
    *,
    labels: Sequence[str] | None = None,
    zero_score_empty: bool = True,
) -> dict[str, Any]:
    """Onset-only event-based metrics (the HEAR 2021 event F-measure: onset within ``t_collar``,
    offsets ignored)."""
    return event_based_metrics(
        reference, estimated, t_collar=t_collar, percentage_of_length=0.5,
        evaluate_onset=True, evaluate_offset=False, labels=labels, zero_score_empty=zero_score_empty,
    )


def segment_based_metrics(
    reference: EventLists,
    estimated: EventLists,
    time_resolution: float = 1.0,
    *,
    durations: Mapping[str, float] | None = None,
    labels: Sequence[str] | None = None,
    zero_score_empty: bool = True,
) -> dict[str, Any]:
    """Segment-based metrics (``sed_eval.sound_event.SegmentBasedMetrics``): each file is cut into
    ``time_resolution`` s segments; a class is active in a segment if any of its events overlaps
    it. ``durations`` (seconds per file) sets each file's evaluated length; otherwise the largest
    offset in the file's reference/estimate is used (so trailing silence is not scored).

    Returns the same keys as :func:`event_based_metrics` (counts are active segments);
    ``zero_score_empty`` as there.
    """
    sed_eval = _sed_eval()
    if not time_resolution > 0:
        raise ValueError(f"time_resolution must be > 0 seconds, got {time_resolution}")
    label_list, ref, est, files = _prepare(reference, estimated, labels)
    if durations is not None:
        missing = [f for f in files if f not in durations]
        if missing:
            raise ValueError(f"durations lacks {len(missing)} file(s), e.g. {missing[0]!r}")
    metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=label_list, time_resolution=float(time_resolution)
    )
    return _run(metric, ref, est, files, label_list, zero_score_empty, durations)


def psds(
    reference: EventLists,
    estimated_by_threshold: Mapping[float, EventLists],
    durations: Mapping[str, float],
    *,
    dtc_threshold: float = 0.7,
    gtc_threshold: float = 0.7,
    cttc_threshold: float = 0.3,
    alpha_ct: float = 0.0,
    alpha_st: float = 1.0,
    max_efpr: float = 100.0,
) -> float:
    """Polyphonic Sound Detection Score via the optional ``psds_eval`` package (not a dependency
    of audioflex; raises ``ImportError`` with the install command if missing).

    ``estimated_by_threshold`` maps each decision threshold (operating point) to that threshold's
    ``{filename: [events]}``; ``durations`` gives every file's length in seconds. Defaults are the
    DCASE 2021+ scenario 1 settings.
    """
    try:
        import pandas as pd
        from psds_eval import PSDSEval
    except ImportError as e:
        raise ImportError(
            f"PSDS needs the optional psds_eval package (and pandas): pip install psds_eval ({e}); "
            "event_based_metrics / segment_based_metrics work without it"
        ) from e
    if not estimated_by_threshold:
        raise ValueError("psds: estimated_by_threshold is empty; give detections for several thresholds")
    cols = ["filename", "onset", "offset", "event_label"]
    gt_rows = [
        (f, e.onset, e.offset, e.label) for f, evs in reference.items() for e in map(as_event, evs)
    ]
    missing = [f for f in reference if f not in durations]
    if missing:
        raise ValueError(f"psds: durations lacks {len(missing)} reference file(s), e.g. {missing[0]!r}")
    meta = pd.DataFrame(list(durations.items()), columns=["filename", "duration"])
    evaluator = PSDSEval(
        dtc_threshold, gtc_threshold, cttc_threshold, ground_truth=pd.DataFrame(gt_rows, columns=cols), metadata=meta
    )
    for thr in sorted(estimated_by_threshold):
        det = estimated_by_threshold[thr]
        rows = [(f, e.onset, e.offset, e.label) for f, evs in det.items() for e in map(as_event, evs)]
        evaluator.add_operating_point(pd.DataFrame(rows, columns=cols))
    return float(evaluator.psds(alpha_ct=alpha_ct, alpha_st=alpha_st, max_efpr=max_efpr).value)

"""The trivial clip-label baseline: log-mel band statistics and a logistic regression.

What a transformer has to beat on a clip-labelled dataset (``audioflex evaluate --baseline SPLIT``):

1. features: the mean and the standard deviation over time of each of 64 log-mel bands
   (:func:`~audioflex.apps.baselines.common.baseline_logmel`, 10 ms hop) — 128 numbers per clip,
   whatever its length;
2. a classifier: scikit-learn's ``LogisticRegression`` on the standardised features (multinomial
   for single-label data, one per class for multi-label data), fitted on the training split;
3. scored like a checkpoint (:class:`~audioflex.evaluate.lengths.LengthReport`): accuracy or mAP
   at each evaluation length, a clip longer than the length cropped from its start, a shorter one
   kept at its native length (band statistics need no padding). Its front end has one frame shift
   (10 ms); the report's rows say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioflex.apps.baselines.common import baseline_logmel, clip_logmel, read_each
from audioflex.audio.frontend.logmel import LogMel
from audioflex.data.records import ClipRecord
from audioflex.evaluate.lengths import EvalItem, LengthReport, length_row, target_matrix
from audioflex.evaluate.metrics import clip_metrics

logger = logging.getLogger(__name__)

__all__ = ["BASELINE_NAME", "ClipBaseline", "band_statistics", "evaluate_clip_baseline", "fit_clip_baseline"]

BASELINE_NAME = "baseline (log-mel stats + LR)"


def band_statistics(spec: np.ndarray) -> np.ndarray:
    """``[T, F]`` log-mel -> ``[2F]``: each band's mean over time, then its standard deviation."""
    return np.concatenate([spec.mean(0), spec.std(0)]).astype(np.float64)


@dataclass
class ClipBaseline:
    """A fitted baseline: ``labels`` in the classifier's column order."""

    labels: list[str]
    multilabel: bool
    logmel: LogMel
    classifier: Any  # a fitted sklearn Pipeline (StandardScaler + LogisticRegression)

    def predict(self, specs: Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``[N, C]`` (probabilities) of log-mel spectrograms ``[T, F]``."""
        x = np.stack([band_statistics(s) for s in specs])
        return np.asarray(self.classifier.predict_proba(x), dtype=np.float64)


def _read(
    logmel: LogMel, records: Sequence[ClipRecord], max_seconds: float | None, progress: Callable[[int], Any] | None
) -> tuple[list[np.ndarray], list[ClipRecord], list[str]]:
    """Log-mel ``[T, F]`` of each readable record, the records kept, the paths skipped (logged)."""
    done, skipped = read_each(records, lambda rec: clip_logmel(logmel, rec, max_seconds)[0], progress)
    specs = [spec for _, spec in done]
    kept = [records[i] for i, _ in done]
    return specs, kept, skipped


def _targets(records: Sequence[ClipRecord], labels: Sequence[str]) -> np.ndarray:
    """Multi-hot ``[N, C]`` (int64) of the records' labels in ``labels`` order."""
    index = {n: i for i, n in enumerate(labels)}
    items = [EvalItem(r.path, tuple(index[lab] for lab in r.labels)) for r in records]
    return target_matrix(items, len(labels)).astype(np.int64)


def fit_clip_baseline(
    records: Sequence[ClipRecord], *, multilabel: bool | None = None, sample_rate: int = 16000,
    max_seconds: float | None = None, c: float = 1.0, seed: int = 0, progress: Callable[[int], Any] | None = None,
) -> ClipBaseline:
    """Fit the baseline on labelled training ``records`` (each read up to ``max_seconds``).

    ``multilabel`` None: inferred (any clip without exactly one label). Raises ``ValueError`` when
    no clip is readable or fewer than two classes are present.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logmel = baseline_logmel(sample_rate)
    specs, kept, _ = _read(logmel, records, max_seconds, progress)
    if not kept:
        raise ValueError("baseline: none of the training clips could be read")
    labels = sorted({lab for r in kept for lab in r.labels})
    if len(labels) < 2:
        raise ValueError(f"baseline: the training clips carry {len(labels)} label(s); a classifier needs two or more")
    multilabel = any(len(r.labels) != 1 for r in kept) if multilabel is None else multilabel
    x = np.stack([band_statistics(s) for s in specs])
    y = _targets(kept, labels)
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf = make_pipeline(StandardScaler(), OneVsRestClassifier(lr) if multilabel else lr)
    clf.fit(x, y if multilabel else y.argmax(1))
    logger.info("baseline: logistic regression on %d clips x %d features, %d classes", *x.shape, len(labels))
    return ClipBaseline(labels, multilabel, logmel, clf)


def evaluate_clip_baseline(
    train_records: Sequence[ClipRecord], records: Sequence[ClipRecord], *,
    lengths_s: Sequence[float | None] = (None,), train_max_seconds: float | None = None,
    name: str = BASELINE_NAME, progress: Callable[[int], Any] | None = None,
) -> LengthReport:
    """Fit the baseline on ``train_records`` and score ``records`` at each of ``lengths_s``
    (None: native) as :func:`audioflex.apps.lengths.evaluate_lengths` scores a packed checkpoint.

    Raises ``ValueError`` naming labels of ``records`` the training clips do not have.
    """
    model = fit_clip_baseline(train_records, max_seconds=train_max_seconds, progress=progress)
    unknown = sorted({lab for r in records for lab in r.labels} - set(model.labels))
    if unknown:
        raise ValueError(f"baseline: labels {unknown[:5]} of the evaluated clips are not in its training split")
    finite = [s for s in lengths_s if s is not None]
    longest = None if len(finite) < len(lengths_s) or not finite else max(finite)
    specs, kept, skipped = _read(model.logmel, records, longest, progress)
    report = LengthReport(name=name, checkpoint="", metric="mAP" if model.multilabel else "accuracy",
                          skipped=skipped)
    if not kept:
        return report
    y = _targets(kept, model.labels)
    frames_per_s = 1.0 / model.logmel.config.hop_s
    for length in lengths_s:
        cropped = specs if length is None else [s[: max(1, round(length * frames_per_s))] for s in specs]
        m = clip_metrics(model.predict(cropped), y, model.multilabel)
        report.rows.append(length_row(length, model.logmel.config.hop_s * 1000, m))
    return report

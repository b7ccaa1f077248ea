"""A naive sound event detection baseline: per-frame log-mel features and a small MLP frame classifier.

What a model has to beat on a strongly labelled dataset (``audioflex evaluate --baseline`` on event data):

1. features: a log-mel spectrogram (``LogMelConfig``: 64 bands; 10 ms hop), averaged over
   ``hop_s`` blocks (default 0.1 s), each block with its ``context`` neighbours on each side
   stacked (default 2: 0.5 s of context), standardised on the training clips;
2. a frame classifier: scikit-learn's ``MLPClassifier`` (one hidden layer of ``hidden`` units,
   multi-label, early stopping on 10 % of the training frames) on the rasterised strong labels
   (a block is active if an event overlaps it);
3. the same evaluation as a checkpoint (:func:`audioflex.apps.sed.evaluate_scorer`): PSDS1/2 from
   its frame probabilities, post-processing tuned on the validation clips, event/onset/segment F1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioflex.apps.baselines.common import baseline_logmel, clip_logmel, read_each
from audioflex.apps.sed import EventScoring, evaluate_scorer
from audioflex.audio.frontend.logmel import LogMel
from audioflex.data.records import ClipRecord, Event
from audioflex.data.targets import events_to_frame_targets
from audioflex.evaluate.tuning import FrameSet
from audioflex.inference.records import audio_ids

logger = logging.getLogger(__name__)

__all__ = ["FrameBaseline", "evaluate_baseline", "fit_frame_baseline"]


def _features(logmel: LogMel, record: ClipRecord, hop_s: float, context: int) -> tuple[np.ndarray, float]:
    """A clip's block features ``[T_b, n_mels * (2 * context + 1)]`` and its duration (s)."""
    spec, duration = clip_logmel(logmel, record)  # [T, F]
    sr = logmel.config.sample_rate
    per = max(1, round(hop_s * sr / logmel.config.hop_length))
    n = max(1, -(-spec.shape[0] // per))
    pad = np.concatenate([spec, np.repeat(spec[-1:], n * per - spec.shape[0], 0)])
    blocks = pad.reshape(n, per, -1).mean(1)  # [T_b, F]
    edge = np.concatenate([np.repeat(blocks[:1], context, 0), blocks, np.repeat(blocks[-1:], context, 0)])
    feats = np.concatenate([edge[k : k + n] for k in range(2 * context + 1)], axis=1)
    return feats.astype(np.float32), duration


@dataclass
class FrameBaseline:
    """A fitted frame classifier: ``probs [T_b, C]`` per clip, blocks of ``hop_s`` seconds."""

    labels: list[str]
    logmel: LogMel
    hop_s: float
    context: int
    mean: np.ndarray
    std: np.ndarray
    classifier: Any

    def frame_set(self, record: ClipRecord) -> FrameSet:
        """The clip's frame probabilities as a ``FrameSet`` (``probs [T_b, C]``, ``clip`` = max over time)."""
        feats, duration = _features(self.logmel, record, self.hop_s, self.context)
        probs = self.classifier.predict_proba((feats - self.mean) / self.std).astype(np.float64)
        duration = max(duration, max((e.offset for e in record.events), default=0.0))
        return FrameSet(probs, self.hop_s, duration, clip=probs.max(0))

    def score(self, records: Sequence[ClipRecord], progress: Callable[[int], Any] | None = None
              ) -> tuple[dict[str, FrameSet], dict[str, list[Event]], list[str]]:
        """:data:`audioflex.apps.sed.Scorer` of this baseline (unreadable files logged and left out)."""
        keep = set(self.labels)
        keys = audio_ids(records)
        done, skipped = read_each(records, self.frame_set, progress)
        frames = {keys[i]: fs for i, fs in done}
        reference = {keys[i]: [e for e in records[i].events if e.label in keep] for i, _ in done}
        return frames, reference, skipped


def fit_frame_baseline(
    records: Sequence[ClipRecord], labels: Sequence[str], *, sample_rate: int = 16000, hop_s: float = 0.1,
    context: int = 2, hidden: int = 128, max_iter: int = 60, seed: int = 0,
    progress: Callable[[int], Any] | None = None,
) -> FrameBaseline:
    """Fit the baseline on strongly labelled training ``records`` (see the module docstring).

    Raises:
        ValueError: no clip with events, or none readable.
    """
    from sklearn.neural_network import MLPClassifier

    labels = list(labels)
    strong = [r for r in records if r.events]
    if not strong:
        raise ValueError("baseline: the training clips carry no strong labels (events)")
    logmel = baseline_logmel(sample_rate)
    done, _ = read_each(strong, lambda rec: _features(logmel, rec, hop_s, context)[0], progress)
    xs = [feats for _, feats in done]
    ys = [events_to_frame_targets([e for e in strong[i].events if e.label in labels], labels, feats.shape[0], hop_s)
          for i, feats in done]
    if not xs:
        raise ValueError("baseline: none of the training clips could be read")
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = x.mean(0), x.std(0) + 1e-6
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, batch_size=256, learning_rate_init=1e-3,
                        max_iter=max_iter, early_stopping=True, n_iter_no_change=5, random_state=seed)
    clf.fit((x - mean) / std, y.astype(int))
    logger.info("baseline: MLP on %d frames x %d features, %d iterations", x.shape[0], x.shape[1], clf.n_iter_)
    return FrameBaseline(labels, logmel, hop_s, context, mean, std, clf)


def evaluate_baseline(
    train_records: Sequence[ClipRecord], records: Sequence[ClipRecord], *,
    valid_records: Sequence[ClipRecord] | None = None, labels: Sequence[str] | None = None,
    progress: Callable[[int], Any] | None = None, fit_options: dict[str, Any] | None = None,
    scoring: EventScoring = EventScoring(), score_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fit the baseline on ``train_records`` and score it on ``records`` as a checkpoint is scored
    (``scoring``, ``score_dir``: as :func:`audioflex.apps.sed.evaluate_scorer`); the report gains
    ``baseline`` (what was fitted)."""
    every = list(train_records) + list(records) + list(valid_records or ())
    scored = list(labels) if labels is not None else sorted({e.label for r in every for e in r.events}
                                                            | {x for r in every for x in r.labels})
    model = fit_frame_baseline(train_records, scored, progress=progress, **(fit_options or {}))
    res = evaluate_scorer(lambda recs: model.score(recs, progress), records, labels=scored,
                          valid_records=valid_records, scoring=scoring, score_dir=score_dir)
    clf = model.classifier
    res["baseline"] = {"features": f"log-mel {model.logmel.config.n_mels} bands, {model.hop_s:g} s blocks, "
                                   f"+-{model.context} blocks of context",
                       "classifier": f"MLP {clf.hidden_layer_sizes}, {clf.n_iter_} iterations",
                       "train_clips": len(train_records)}
    return res

"""Training health check: warn when the loss has not left the chance level after N steps.

The chance level is the loss of the best constant prediction: ``ln C`` for single-label
cross-entropy (uniform over C classes; the class prior is used when it is known), and for
multi-label BCE (averaged over classes) the mean binary entropy of the class frequencies. A run
whose smoothed training loss is still above ``ratio`` x that level after ``steps`` optimiser steps
learns nothing from its inputs; the warning names the usual causes and the config keys to change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["HealthCheck", "chance_loss"]

_CAUSES = (
    "input level/normalisation not matching the data (data.norm_stats: dataset), "
    "a learning rate too high or too low for this model size (optim.lr, optim.warmup_steps), "
    "augmentation too strong for a small dataset (augment.mixup_alpha, augment.mixup_prob, "
    "augment.freq_mask/time_mask, model.kwargs.token_drop), "
    "too few steps (max_steps, max_minutes), or labels that do not match the audio (audioflex inspect DATA)"
)


def _entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def chance_loss(loss_kind: str, labels_per_clip: Sequence[Iterable[int]], num_classes: int) -> float:
    """The loss of the best constant prediction for clips with these label indices.

    ``ce``: the cross-entropy of the class prior (``ln C`` for balanced classes); ``bce``: the mean
    over classes of the binary entropy of each class's frequency. Empty ``labels_per_clip``: the
    uniform values (``ln C``, and ``ln 2`` per class for BCE).
    """
    n = len(labels_per_clip)
    if n == 0:
        return math.log(num_classes) if loss_kind == "ce" else math.log(2.0)
    counts = [0] * num_classes
    for labels in labels_per_clip:
        for i in set(labels):
            counts[i] += 1
    if loss_kind == "ce":
        total = sum(counts)
        return -sum(c / total * math.log(c / total) for c in counts if c > 0)
    return sum(_entropy(c / n) for c in counts) / num_classes


@dataclass
class HealthCheck:
    """Watches the per-step training loss; :meth:`update` returns a warning once, at ``steps``.

    Attributes:
        chance: the chance-level loss (:func:`chance_loss`).
        steps: the step at which the loss must be below ``ratio * chance`` (0: never checked).
        ratio: the share of the chance level counted as "not learning" (0.98).
        smooth: the exponential smoothing of the loss (the last ~1/(1-smooth) steps count).
    """

    chance: float
    steps: int
    ratio: float = 0.98
    smooth: float = 0.9
    _ema: float | None = None
    _done: bool = False

    def update(self, step: int, loss: float) -> str | None:
        """Count step ``step``'s mean clip loss; the warning text when the check fails at it."""
        if not math.isfinite(loss):
            return None
        self._ema = loss if self._ema is None else self.smooth * self._ema + (1 - self.smooth) * loss
        if self._done or self.steps <= 0 or step < self.steps:
            return None
        self._done = True
        if self._ema <= self.ratio * self.chance:
            return None
        return (
            f"training loss {self._ema:.3f} is still at the chance level {self.chance:.3f} after {step} steps "
            f"(the model is not learning; set health_check_steps to move this check). Likely causes: {_CAUSES}"
        )

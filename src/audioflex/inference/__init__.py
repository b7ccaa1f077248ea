"""The inference floor between the models and the apps: any-length tagging, frame scores, windows.

- :mod:`~audioflex.inference.pipeline`: ``Pipeline`` (front end + model + labels: ``tag``,
  ``clip_scores``, ``frame_scores``, ``detect``, ``embed``) and ``check_frame_shift``;
- :mod:`~audioflex.inference.windows`: window plans, overlap-add weights, score aggregation;
- :mod:`~audioflex.inference.frames`: frame probabilities of a file or waveform on one timeline
  (sliding windows + overlap-add) and their events.

Audio is read by :class:`audioflex.audio.stream.AudioReader`; models are called through their
contract (:mod:`audioflex.models.contract`); scoring of the results lives in :mod:`audioflex.evaluate`.
"""

from audioflex.inference.frames import FrameScores, WindowScores, frame_scores, iter_window_scores, scores_to_events
from audioflex.inference.pipeline import MAX_SHIFT_PER_WINDOW, Pipeline, Tag, check_frame_shift
from audioflex.inference.windows import (
    WEIGHTINGS,
    OverlapAdd,
    WindowPlan,
    aggregate_scores,
    plan_windows,
    window_weights,
)

__all__ = [
    "MAX_SHIFT_PER_WINDOW",
    "WEIGHTINGS",
    "FrameScores",
    "OverlapAdd",
    "Pipeline",
    "Tag",
    "WindowPlan",
    "WindowScores",
    "aggregate_scores",
    "check_frame_shift",
    "frame_scores",
    "iter_window_scores",
    "plan_windows",
    "scores_to_events",
    "window_weights",
]

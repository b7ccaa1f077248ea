"""Validation metrics of strong-label training runs (evaluate/selection.py)."""

from __future__ import annotations

import numpy as np
import pytest

from audioflex.data.records import Event
from audioflex.data.targets import events_to_frame_targets
from audioflex.evaluate.selection import SELECTION_GRID, sed_validation_metrics, selection_value
from audioflex.evaluate.tuning import FrameSet

LABELS = ["a", "b", "c"]  # "c" never occurs in the reference
HOP = 0.1


def _reference(n: int = 6, seed: int = 0) -> dict[str, list[Event]]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        evs = []
        for lab in ("a", "b"):
            on = round(float(rng.uniform(0.0, 5.0)), 1)
            evs.append(Event(on, round(on + float(rng.uniform(0.5, 2.0)), 1), lab))
        out[f"f{i}"] = evs
    return out


def _frames(reference: dict[str, list[Event]], probs_of: object) -> dict[str, FrameSet]:
    frames = {}
    for k, evs in reference.items():
        target = events_to_frame_targets(evs, LABELS, 80, HOP).astype(np.float64)
        frames[k] = FrameSet(probs_of(target), HOP, 8.0, clip=target.max(0))
    return frames


def test_perfect_scores_give_one_and_noise_gives_less() -> None:
    ref = _reference()
    clips = {k: sorted({e.label for e in v}) for k, v in ref.items()}
    perfect = sed_validation_metrics(_frames(ref, lambda t: 0.1 + 0.8 * t), ref, LABELS, clip_targets=clips)
    for key in ("frame_mAP", "frame_f1", "event_f1", "onset_f1", "mAP"):
        assert perfect[key] == pytest.approx(1.0), key  # the class without events is not in the macros
    assert perfect["onset_threshold"] in SELECTION_GRID["thresholds"]
    assert "psds1" not in perfect

    rng = np.random.default_rng(1)
    noisy = sed_validation_metrics(_frames(ref, lambda t: rng.uniform(0, 1, t.shape)), ref, LABELS)
    assert noisy["onset_f1"] < 0.6 and noisy["frame_mAP"] < 0.6 and "mAP" not in noisy


def test_tuned_onset_f1_does_not_need_threshold_one_half() -> None:
    """Low, well-ranked probabilities (as early in training): 0 events at 0.5, the tuned onset F1 finds them."""
    ref = _reference()
    m = sed_validation_metrics(_frames(ref, lambda t: 0.05 + 0.3 * t), ref, LABELS)
    assert m["event_f1"] == 0.0 and m["frame_f1"] == 0.0
    assert m["onset_f1"] == pytest.approx(1.0) and m["onset_threshold"] < 0.35


def test_psds1_and_selection_value() -> None:
    pytest.importorskip("sed_scores_eval")
    ref = _reference()
    m = sed_validation_metrics(_frames(ref, lambda t: 0.1 + 0.8 * t), ref, LABELS, psds=True)
    assert m["psds1"] > 0.9
    assert selection_value(m, "psds1") == m["psds1"]
    assert np.isnan(selection_value({}, "onset_f1"))
    with pytest.raises(ValueError, match="sed.select"):
        selection_value(m, "accuracy")


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="no validation files"):
        sed_validation_metrics({}, {}, LABELS)
    with pytest.raises(ValueError, match="do not match 3 labels"):
        sed_validation_metrics({"x": FrameSet(np.zeros((4, 2)), HOP, 0.4)}, {}, LABELS)

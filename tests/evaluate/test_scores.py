"""Score files and PSDS (sed_scores_eval), cross-checked with psds_eval; the tuning matcher agrees
with sed_eval; third-party imports print no deprecation warning."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from audioflex.data.records import Event
from audioflex.evaluate.events import PostProcessing, frames_to_events
from audioflex.evaluate.metrics import event_based_metrics, onset_event_metrics
from audioflex.evaluate.scores import (
    merge_overlapping,
    psds_from_scores,
    read_score_files,
    score_frame,
    write_score_files,
)
from audioflex.evaluate.tuning import FrameSet, collar_counts, tune_postprocessing

LABELS = ["a", "b"]
HOP = 0.1


def synthetic(n_files: int = 6, seed: int = 0):
    """Scores that follow the references with noise: {id: probs [T, 2]}, references, durations."""
    rng = np.random.default_rng(seed)
    probs, ref, dur = {}, {}, {}
    for i in range(n_files):
        t = 60
        p = 0.25 * rng.random((t, 2))
        evs = []
        for c, lab in enumerate(LABELS):
            on = int(rng.integers(0, 30))
            ln = int(rng.integers(5, 25))
            p[on : on + ln, c] += 0.5 + 0.2 * rng.random(ln)
            evs.append(Event(round(on * HOP, 3), round((on + ln) * HOP, 3), lab))
        probs[f"f{i}"] = np.clip(p, 0, 1)
        ref[f"f{i}"] = evs
        dur[f"f{i}"] = t * HOP
    return probs, ref, dur


def test_score_files_round_trip(tmp_path):
    probs, _, dur = synthetic(2)
    dfs = {k: score_frame(p, HOP, LABELS, dur[k]) for k, p in probs.items()}
    write_score_files(dfs, tmp_path)
    back = read_score_files(tmp_path)
    assert sorted(back) == ["f0", "f1"]
    assert np.allclose(back["f0"][LABELS].to_numpy(), probs["f0"], atol=1e-5)
    assert back["f0"]["offset"].iloc[-1] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="plain file name"):
        write_score_files({"a/b": dfs["f0"]}, tmp_path)


def test_merge_overlapping_reference_events():
    evs = [Event(0, 1, "a"), Event(0.5, 2, "a"), Event(2, 3, "a"), Event(0, 1, "b"), Event(4, 5, "a")]
    assert merge_overlapping(evs) == [(0, 1, "b"), (0, 3, "a"), (4, 5, "a")]


def _numpy2_safe_psds_eval(monkeypatch):
    """psds_eval 0.5.3 calls int() on a 1x1 array (an error since numpy 2); give its module a numpy
    whose argwhere returns the flat index, for this cross-check only."""
    pe = pytest.importorskip("psds_eval.psds")
    shim = types.ModuleType("numpy_shim")
    shim.__dict__.update(np.__dict__)
    shim.argwhere = lambda a: np.argwhere(a).reshape(-1)[:1].squeeze()
    monkeypatch.setattr(pe, "np", shim)


def test_psds_agrees_with_psds_eval(monkeypatch):
    pytest.importorskip("sed_scores_eval")
    _numpy2_safe_psds_eval(monkeypatch)
    from audioflex.evaluate.metrics import psds as psds_eval_psds

    probs, ref, dur = synthetic()
    dfs = {k: score_frame(p, HOP, LABELS, dur[k]) for k, p in probs.items()}
    exact = psds_from_scores(dfs, ref, dur, scenario="psds1")["psds"]
    # psds_eval approximates the PSD-ROC by operating points: at every distinct score value as a
    # threshold it reaches the exact value up to its interpolation; 50 thresholds come within 0.02
    thresholds = np.unique(np.round(np.concatenate([p.ravel() for p in probs.values()]), 2))
    thresholds = thresholds[(thresholds > 0) & (thresholds <= 1)]
    by_thr = {float(t): {k: frames_to_events(p, HOP, LABELS, PostProcessing(thresholds=float(t)), duration_s=dur[k])
                         for k, p in probs.items()} for t in thresholds}
    approx = psds_eval_psds(ref, by_thr, dur, alpha_st=1.0)
    assert 0.3 < exact <= 1.0
    assert approx == pytest.approx(exact, abs=0.02)


def test_tuning_matcher_counts_like_sed_eval():
    probs, ref, dur = synthetic(8, seed=1)
    for thr in (0.3, 0.5, 0.7):
        est = {k: frames_to_events(p, HOP, LABELS, PostProcessing(thresholds=thr), duration_s=dur[k])
               for k, p in probs.items()}
        full = event_based_metrics(ref, est, labels=LABELS)
        onset = onset_event_metrics(ref, est, labels=LABELS)
        for lab in LABELS:
            tp, n_ref, n_est = collar_counts(ref, est, lab)
            cw = full["class_wise"][lab]
            assert (n_ref, n_est) == (cw["n_ref"], cw["n_sys"])
            assert 2 * tp / (n_ref + n_est) == pytest.approx(cw["f1"], abs=1e-9)
            tp_on, _, _ = collar_counts(ref, est, lab, onset_only=True)
            assert 2 * tp_on / (n_ref + n_est) == pytest.approx(onset["class_wise"][lab]["f1"], abs=1e-9)


def test_tuning_finds_a_better_threshold_than_half():
    probs, ref, dur = synthetic(8, seed=2)
    probs = {k: p * 0.6 for k, p in probs.items()}  # events peak below 0.5: a fixed 0.5 finds little
    frames = {k: FrameSet(p, HOP, dur[k]) for k, p in probs.items()}
    tuned = tune_postprocessing(frames, ref, LABELS)
    assert all(t < 0.5 for t in tuned["thresholds"].values())
    assert tuned["validation_f1_macro"] > 0.5 and tuned["per_class"]
    assert set(tuned["median_filter_s"]) == set(LABELS)


def test_sed_imports_print_no_deprecation_warning():
    code = ("from audioflex.evaluate.thirdparty import import_sed_scores_eval, import_sed_eval; "
            "import_sed_eval(); import_sed_scores_eval()")
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pkg_resources" not in out.stderr and "Warning" not in out.stderr, out.stderr


def test_tuning_grid_is_in_seconds_whatever_the_hop():
    """The median-filter and minimum-duration grid is seconds, the same for every model hop; the
    report gives grid values; lengths that round to the same frames at a hop are tried once."""
    from audioflex.evaluate import tuning
    from audioflex.evaluate.events import min_event_frames

    probs, ref, dur = synthetic(6, seed=3)
    for k in (1, 4):  # the same activity at HOP and at HOP / 4 (each frame repeated)
        frames = {f: FrameSet(np.repeat(p, k, axis=0), HOP / k, dur[f]) for f, p in probs.items()}
        tuned = tune_postprocessing(frames, ref, LABELS, median_filter_s=(0.0, 0.3, 0.5), min_duration_s=(0.0, 0.2))
        assert set(tuned["median_filter_s"].values()) <= {0.0, 0.3, 0.5}
        assert set(tuned["min_duration_s"].values()) <= {0.0, 0.2}
        assert tuned["validation_f1_macro"] > 0.5
    # at a 0.16 s hop, 0.0 and 0.05 s are both "no filter" (one frame), 0.3 s is 2 frames -> 3 (odd)
    assert tuning._distinct((0.0, 0.05, 0.3, 0.5), 0.16, tuning._median_steps) == [0.0, 0.3]
    assert tuning._distinct((0.0, 0.05, 0.3, 0.5), 0.04, tuning._median_steps) == [0.0, 0.3, 0.5]
    # minimum durations at 0.16 s steps: 0.1 and 0.16 s keep events of >= 1 step, 0.2 and 0.32 s of >= 2
    assert tuning._distinct((0.0, 0.1, 0.16, 0.2, 0.32), 0.16, min_event_frames) == [0.0, 0.1, 0.2]
    with pytest.raises(ValueError, match="seconds >= 0"):
        tune_postprocessing({f: FrameSet(p, HOP, dur[f]) for f, p in probs.items()}, ref, LABELS,
                            median_filter_s=(-0.1,))

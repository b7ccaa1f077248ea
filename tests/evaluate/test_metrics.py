"""Clip metrics (accuracy, top-k, mAP, AUC, d') and SED metrics (sed_eval) on hand-checked cases."""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pytest
import torch

from audioflex.evaluate.events import Event
from audioflex.evaluate.metrics import (
    accuracy,
    class_auc,
    class_average_precision,
    clip_metrics,
    d_prime,
    event_based_metrics,
    mean_auc,
    mean_average_precision,
    onset_event_metrics,
    psds,
    segment_based_metrics,
    top_k_accuracy,
)

# ----------------------------------------------------------------------------------- clip metrics
# class 0 scores 0.9, 0.8, 0.3, 0.1 with positives at clips 0 and 2:
#   AP = (1/1 + 2/3) / 2 = 5/6; AUC = 3 of 4 (pos, neg) pairs ordered = 0.75
S2 = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
Y2 = np.array([0, 1, 0, 1])


def test_accuracy_index_onehot_multihot_and_soft_targets():
    assert accuracy(S2, Y2) == 0.5  # argmax 0,0,1,1 vs 0,1,0,1
    assert accuracy(S2, np.eye(2)[Y2]) == 0.5
    assert accuracy(torch.tensor(S2), torch.tensor(Y2)) == 0.5
    # multi-hot: a hit when the argmax is any positive; an all-zero row is a miss
    s = np.array([[0.1, 0.8, 0.1], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    y = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
    assert accuracy(s, y) == 0.5
    # soft (label-smoothed) targets: the largest target is the class
    soft = np.full((4, 2), 0.05) + 0.9 * np.eye(2)[Y2]
    assert accuracy(S2, soft) == 0.5


def test_top_k_accuracy_and_ties():
    s = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    y = np.array([1, 0, 1])
    assert top_k_accuracy(s, y, k=1) == 0.0  # ties go to the lowest index (0 for clip 2)
    assert top_k_accuracy(s, y, k=2) == pytest.approx(2 / 3)  # clip 0 and clip 2 (0, 1)
    assert top_k_accuracy(s, y, k=4) == 1.0
    assert top_k_accuracy(s, y, k=10) == 1.0  # capped at C
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy(s, y, k=0)


def test_map_auc_dprime_hand_computed():
    ap = class_average_precision(S2, Y2)
    # class 1 (positives clips 1, 3; scores .1 .2 .7 .9): ranking 3(+), 2(-), 1(+), 0(-)
    #   AP = (1 + 2/3) / 2 = 5/6; AUC: pos {.2,.9} vs neg {.1,.7}: (.2>.1, .9>.1, .9>.7) = 3/4
    np.testing.assert_allclose(ap, [5 / 6, 5 / 6])
    np.testing.assert_allclose(class_auc(S2, Y2), [0.75, 0.75])
    assert mean_average_precision(S2, Y2) == pytest.approx(5 / 6)
    assert mean_auc(S2, Y2) == pytest.approx(0.75)
    # d' = sqrt(2) * Phi^-1(0.75) = 1.41421356 * 0.67448975
    assert d_prime(0.75) == pytest.approx(0.9538725524, abs=1e-9)
    assert d_prime(0.5) == 0.0
    assert d_prime(1.0) == math.inf
    np.testing.assert_allclose(d_prime(np.array([0.5, 0.75])), [0.0, 0.9538725524])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d_prime(1.2)


def test_classes_without_positives_or_negatives_are_left_out(caplog):
    s = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.4], [0.4, 0.6, 0.3]])
    y = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0]])
    # class 0: AP 1, AUC 1; class 1: all positive -> AP 1, no AUC; class 2: no positive -> skipped
    ap, auc = class_average_precision(s, y), class_auc(s, y)
    assert ap[0] == 1.0 and ap[1] == 1.0 and np.isnan(ap[2])
    assert auc[0] == 1.0 and np.isnan(auc[1]) and np.isnan(auc[2])
    assert mean_average_precision(s, y) == 1.0
    assert mean_auc(s, y) == 1.0
    with caplog.at_level(logging.WARNING):
        assert math.isnan(mean_average_precision(s, np.zeros((3, 3))))
    assert "undefined" in caplog.text
    # one class only: works
    assert mean_average_precision(s[:, :1], y[:, :1]) == 1.0


def test_clip_metrics_keys_and_primary():
    m = clip_metrics(S2, Y2, multilabel=False)
    assert m["primary_metric"] == "accuracy" and m["primary"] == m["accuracy"] == 0.5
    assert m["mAP"] == pytest.approx(5 / 6) and m["mAUC"] == pytest.approx(0.75)
    assert m["d_prime"] == pytest.approx(0.9538725524, abs=1e-9)
    assert "top5_accuracy" not in m  # only 2 classes
    rng = np.random.default_rng(0)
    s, y = rng.random((20, 8)), rng.integers(0, 8, 20)
    m = clip_metrics(s, y, multilabel=False)
    assert m["top5_accuracy"] == top_k_accuracy(s, y, 5) >= m["accuracy"]
    ml = clip_metrics(S2, np.eye(2)[Y2], multilabel=True)
    assert ml["primary_metric"] == "mAP" and ml["primary"] == pytest.approx(5 / 6)
    assert "accuracy" not in ml
    assert all(isinstance(v, float) for k, v in ml.items() if k != "primary_metric")


@pytest.mark.parametrize(
    ("scores", "targets", "match"),
    [
        (np.zeros(4), Y2, r"\[N, C\]"),
        (S2, np.array([0, 1, 2, 1]), r"in \[0, 2\)"),
        (S2, np.array([0, 1, 0]), "3 entries"),
        (S2, np.array([0.5, 1, 0, 1]), "integer class indices"),
        (S2, np.zeros((4, 3)), "does not match"),
        (np.full((4, 2), np.nan), Y2, "NaN"),
        (np.zeros((0, 2)), np.zeros(0), "empty"),
    ],
)
def test_clip_metrics_bad_input(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        clip_metrics(scores, targets, multilabel=False)


# ------------------------------------------------------------------------------------ SED metrics
REF = {"f1.wav": [Event(1.0, 2.0, "a"), Event(3.0, 4.0, "b")]}


def test_event_based_one_onset_inside_one_outside_the_collar():
    est = {"f1.wav": [Event(1.1, 2.05, "a"), Event(3.5, 4.0, "b")]}
    m = event_based_metrics(REF, est, t_collar=0.2, percentage_of_length=0.2)
    # a matches (onset off 0.1, offset off 0.05); b's onset is 0.5 off -> no match
    # TP=1, Nsys=2, Nref=2 -> P=R=F=0.5; ER = (D=1 + I=1) / 2 = 1
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["error_rate"] == pytest.approx(1.0)
    assert m["class_wise"]["a"]["f1"] == pytest.approx(1.0)
    assert m["class_wise"]["b"]["f1"] == pytest.approx(0.0)
    assert m["f1_macro"] == pytest.approx(0.5)
    assert m["class_wise"]["b"]["n_ref"] == 1 and m["class_wise"]["b"]["n_sys"] == 1


def test_event_based_offsets_and_onset_only_variant():
    est = {"f1.wav": [Event(1.1, 2.05, "a"), Event(3.15, 5.0, "b"), Event(6.0, 7.0, "a")]}
    # onset+offset: b's offset is 1.0 off (> max(0.2, 0.2 * 1 s)) -> TP=1 of Nsys=3, Nref=2
    m = event_based_metrics(REF, est)
    assert (m["precision"], m["recall"]) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert m["f1"] == pytest.approx(0.4)  # 2 * (1/3 * 1/2) / (1/3 + 1/2)
    assert m["error_rate"] == pytest.approx(1.5)  # (D=1 + I=2) / 2
    # class-wise: a P=1/2 R=1 F=2/3; b F=0 -> macro 1/3
    assert m["class_wise"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx(1 / 3)
    # onset only (HEAR): b now matches -> TP=2: P=2/3, R=1, F=0.8
    o = onset_event_metrics(REF, est, t_collar=0.2)
    assert (o["precision"], o["recall"], o["f1"]) == (pytest.approx(2 / 3), pytest.approx(1.0), pytest.approx(0.8))


def test_event_based_files_without_events():
    ref = {"f1.wav": REF["f1.wav"], "empty.wav": []}
    est = {"f1.wav": REF["f1.wav"], "empty.wav": [Event(0.0, 1.0, "a")], "extra.wav": [Event(0.0, 1.0, "b")]}
    m = event_based_metrics(ref, est)
    # 2 TPs, 2 insertions in files without reference events
    assert m["num_files"] == 3
    assert m["recall"] == pytest.approx(1.0) and m["precision"] == pytest.approx(0.5)
    # no estimate at all: everything deleted, scores are 0 (not NaN)
    m = event_based_metrics(REF, {"f1.wav": []})
    assert m["recall"] == 0.0 and m["error_rate"] == pytest.approx(1.0)
    assert m["f1"] == 0.0 and m["precision"] == 0.0 and m["f1_macro"] == 0.0


def test_silent_class_counts_as_zero_unless_asked():
    est = {"f1.wav": [Event(1.0, 2.0, "a")]}  # nothing for b
    m = event_based_metrics(REF, est)
    assert m["class_wise"]["b"]["f1"] == 0.0 and m["class_wise"]["b"]["precision"] == 0.0
    assert m["f1_macro"] == pytest.approx(0.5)
    # sed_eval's own default: b's precision/F1 are NaN and b drops out of the macro average
    m = event_based_metrics(REF, est, zero_score_empty=False)
    assert math.isnan(m["class_wise"]["b"]["f1"])
    assert m["f1_macro"] == pytest.approx(1.0)
    s = segment_based_metrics(REF, est, durations={"f1.wav": 5.0})
    assert s["class_wise"]["b"]["f1"] == 0.0 and s["f1_macro"] == pytest.approx(0.5)


def test_sed_metric_input_errors():
    with pytest.raises(ValueError, match="share no filename"):
        event_based_metrics(REF, {"/data/f1.wav": REF["f1.wav"]})
    with pytest.raises(ValueError, match="not in labels"):
        event_based_metrics(REF, REF, labels=["a"])
    with pytest.raises(TypeError, match="mappings"):
        event_based_metrics(list(REF["f1.wav"]), REF)


def test_segment_based_hand_checked():
    # 1 s segments over 4 s: ref a -> segs {0,1}, b -> {3}; est a -> {1,2} and {3}
    ref = {"f.wav": [Event(0.0, 2.0, "a"), Event(3.0, 3.5, "b")]}
    est = {"f.wav": [Event(1.5, 3.0, "a"), Event(3.2, 3.4, "a")]}
    m = segment_based_metrics(ref, est, time_resolution=1.0, durations={"f.wav": 4.0})
    # Nref=3, Nsys=3, TP=1 (a in seg 1) -> P=R=F=1/3
    assert (m["precision"], m["recall"], m["f1"]) == (pytest.approx(1 / 3),) * 3
    # seg 0: D (a missed), seg 2: I (a extra), seg 3: S (b missed, a extra) -> ER = 3/3
    assert m["error_rate"] == pytest.approx(1.0)
    assert m["deletion_rate"] == pytest.approx(1 / 3)
    assert m["insertion_rate"] == pytest.approx(1 / 3)
    assert m["substitution_rate"] == pytest.approx(1 / 3)
    assert m["class_wise"]["a"]["n_ref"] == 2 and m["class_wise"]["a"]["n_sys"] == 3
    # finer segments (0.5 s): ref a {0..3}, b {6}; est a {3,4,5,6} -> TP=1, Nref=5, Nsys=4
    m = segment_based_metrics(ref, est, time_resolution=0.5, durations={"f.wav": 4.0})
    assert m["recall"] == pytest.approx(1 / 5) and m["precision"] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="durations lacks"):
        segment_based_metrics(ref, est, durations={})


def test_psds_without_psds_eval_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psds_eval", None)  # makes `import psds_eval` fail
    with pytest.raises(ImportError, match="pip install psds_eval"):
        psds(REF, {0.5: REF}, {"f1.wav": 10.0})

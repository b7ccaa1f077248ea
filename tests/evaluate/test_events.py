"""Event post-processing (frames -> events), frame-target rasterisation and event files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audioflex.data.records import Event as RecordEvent
from audioflex.data.targets import events_to_frame_targets
from audioflex.evaluate.events import (
    Event,
    FileEvent,
    PostProcessing,
    as_event,
    events_by_file,
    frames_to_events,
    read_events,
    read_events_json,
    read_events_tsv,
    write_events_json,
    write_events_tsv,
)

HOP = 0.1


def curve(*values: float) -> np.ndarray:
    """A one-class activity curve ``[T, 1]``."""
    return np.asarray(values, dtype=np.float64)[:, None]


def spans(events: list[Event]) -> list[tuple[float, float, str]]:
    return [(e.onset, e.offset, e.label) for e in events]


# ------------------------------------------------------------------------------ frames_to_events
def test_event_type_is_the_records_event():
    assert Event is RecordEvent
    assert issubclass(FileEvent, RecordEvent)


def test_threshold_segments_to_seconds():
    p = curve(0.1, 0.6, 0.7, 0.2, 0.5, 0.9, 0.4)
    ev = frames_to_events(p, HOP, ["dog"], PostProcessing(thresholds=0.5))
    # >= threshold: frames 1-2 and 4-5 -> [0.1, 0.3) and [0.4, 0.6)
    assert spans(ev) == [(0.1, 0.3, "dog"), (0.4, 0.6, "dog")]
    assert all(type(e) is Event for e in ev)
    # a higher threshold keeps only frame 5
    assert spans(frames_to_events(p, HOP, ["dog"], PostProcessing(thresholds=0.8))) == [(0.5, 0.6, "dog")]


def test_event_running_to_the_end_and_from_the_start():
    p = curve(0.9, 0.9, 0.0, 0.9)
    assert spans(frames_to_events(p, 0.25, ["x"])) == [(0.0, 0.5, "x"), (0.75, 1.0, "x")]


def test_median_filter_removes_one_frame_spike_and_fills_one_frame_hole():
    p = curve(0, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0)
    raw = frames_to_events(p, HOP, ["a"])
    assert spans(raw) == [(0.2, 0.3, "a"), (0.6, 0.8, "a"), (0.9, 1.1, "a")]
    # 3-frame median: the spike at frame 2 goes, the hole at frame 8 is filled
    filt = frames_to_events(p, HOP, ["a"], PostProcessing(median_filter_s=0.3))
    assert spans(filt) == [(0.6, 1.1, "a")]
    # an even window (0.2 s = 2 frames) is made odd (3 frames): same result
    assert spans(frames_to_events(p, HOP, ["a"], PostProcessing(median_filter_s=0.2))) == spans(filt)
    # a window of one frame does nothing
    assert spans(frames_to_events(p, HOP, ["a"], PostProcessing(median_filter_s=0.1))) == spans(raw)


def test_median_filter_per_class():
    p = np.zeros((7, 2))
    p[3, :] = 1.0  # a one-frame spike in both classes
    ev = frames_to_events(p, HOP, ["a", "b"], PostProcessing(median_filter_s={"a": 0.3}))
    assert spans(ev) == [(0.3, 0.4, "b")]
    ev = frames_to_events(p, HOP, ["a", "b"], PostProcessing(median_filter_s=[0.0, 0.3]))
    assert spans(ev) == [(0.3, 0.4, "a")]


def test_merge_short_gap():
    p = curve(1, 1, 0, 1, 1, 0, 0, 0, 1)
    assert len(frames_to_events(p, HOP, ["a"])) == 3
    # the 1-frame (0.1 s) gap is shorter than 0.15 s -> merged; the 3-frame gap is not
    ev = frames_to_events(p, HOP, ["a"], PostProcessing(merge_gap_s=0.15))
    assert spans(ev) == [(0.0, 0.5, "a"), (0.8, 0.9, "a")]
    # a gap equal to merge_gap_s is not "shorter": kept apart
    assert len(frames_to_events(p, HOP, ["a"], PostProcessing(merge_gap_s=0.1))) == 3
    # large enough: everything merges
    assert spans(frames_to_events(p, HOP, ["a"], PostProcessing(merge_gap_s=0.35))) == [(0.0, 0.9, "a")]


def test_drop_short_events_after_merging():
    p = curve(1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1)
    # events: [0,0.1) (1 frame), [0.3,0.6) (3 frames), [0.8,0.9), [1.0,1.1)
    ev = frames_to_events(p, HOP, ["a"], PostProcessing(min_duration_s=0.25))
    assert spans(ev) == [(0.3, 0.6, "a")]
    # equal to the minimum is kept
    assert spans(frames_to_events(p, HOP, ["a"], PostProcessing(min_duration_s=0.3))) == [(0.3, 0.6, "a")]
    # merging first: [0.8, 1.1) is 3 frames after filling the 1-frame gap -> survives
    ev = frames_to_events(p, HOP, ["a"], PostProcessing(min_duration_s=0.25, merge_gap_s=0.15))
    assert spans(ev) == [(0.3, 0.6, "a"), (0.8, 1.1, "a")]


def test_per_class_thresholds_dict_and_array():
    p = np.array([[0.3, 0.3], [0.6, 0.6], [0.9, 0.9], [0.3, 0.3]])
    labels = ["lo", "hi"]
    ev = frames_to_events(p, HOP, labels, PostProcessing(thresholds={"lo": 0.25, "hi": 0.8}))
    assert spans(ev) == [(0.0, 0.4, "lo"), (0.2, 0.3, "hi")]
    assert spans(frames_to_events(p, HOP, labels, PostProcessing(thresholds=np.array([0.25, 0.8])))) == spans(ev)
    # a label missing from the dict uses 0.5
    assert spans(frames_to_events(p, HOP, labels, PostProcessing(thresholds={"hi": 0.8}))) == [
        (0.1, 0.3, "lo"),
        (0.2, 0.3, "hi"),
    ]


def test_offset_duration_filename_and_tensor_input():
    p = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    ev = frames_to_events(p, 0.5, ["a"], offset_s=10.0, duration_s=11.7, filename="f.wav")
    assert ev == [FileEvent(10.5, 11.7, "a", "f.wav")]
    # starting at/after the duration: dropped
    assert frames_to_events(p, 0.5, ["a"], offset_s=10.0, duration_s=10.5) == []
    # float junk is rounded away (3 * 0.1 = 0.30000000000000004)
    assert frames_to_events(curve(0, 0, 0, 1), 0.1, ["a"])[0].onset == 0.3


def test_events_sorted_by_onset_across_classes():
    p = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], dtype=float)
    assert spans(frames_to_events(p, 1.0, ["a", "b"])) == [(0.0, 2.0, "b"), (1.0, 3.0, "a")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probs": np.zeros(5)}, r"\[T, C\]"),
        ({"probs": np.zeros((5, 3))}, "3 classes but 2 labels"),
        ({"probs": np.full((5, 2), np.nan)}, "NaN"),
        ({"frame_hop_s": 0.0}, "frame_hop_s"),
        ({"thresholds": {"cat": 0.2}}, "unknown label"),
        ({"thresholds": [0.1, 0.2, 0.3]}, "3 values for 2 classes"),
        ({"min_duration_s": -1.0}, "min_duration_s"),
    ],
)
def test_frames_to_events_bad_input(kwargs, match):
    args = {"probs": np.zeros((5, 2)), "frame_hop_s": 0.1, "labels": ["a", "b"]}
    post = {k: kwargs.pop(k) for k in list(kwargs) if k in ("thresholds", "min_duration_s")}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        frames_to_events(**args, post=PostProcessing(**post))
    if post:  # the same check before any work, naming the field
        with pytest.raises(ValueError, match=match):
            PostProcessing(**post).check(["a", "b"])


def test_post_processing_is_one_value():
    post = PostProcessing(thresholds={"a": 0.3}, median_filter_s=[0.1, 0.2], min_duration_s=np.float32(0.25))
    assert post.to_dict() == {"thresholds": {"a": 0.3}, "median_filter_s": [0.1, 0.2],
                              "min_duration_s": 0.25, "merge_gap_s": 0.0}
    json.dumps(post.to_dict())
    assert post.threshold_summary() == {"a": 0.3}
    assert PostProcessing(thresholds=0.4).threshold_summary() == 0.4
    assert PostProcessing(thresholds=[0.4, 0.6]).threshold_summary() is None
    thr, med, dur, gap = post.per_class(["a", "b"])
    assert thr.tolist() == [0.3, 0.5] and med.tolist() == [0.1, 0.2] and gap.tolist() == [0.0, 0.0]
    assert dur.tolist() == pytest.approx([0.25, 0.25])
    # a bare threshold where a PostProcessing belongs: one clear error, not an AttributeError
    with pytest.raises(TypeError, match=r"PostProcessing\(thresholds=0.3\)"):
        frames_to_events(np.zeros((5, 2)), 0.1, ["a", "b"], 0.3)


# ------------------------------------------------------------------------ events -> frame targets
def test_frame_targets_any_overlap():
    labels = ["a", "b"]
    ev = [Event(0.05, 0.25, "a"), Event(0.3, 0.4, "b"), Event(0.9, 5.0, "a")]
    t = events_to_frame_targets(ev, labels, 10, 0.1)
    assert t.shape == (10, 2) and t.dtype == np.float32
    # a: 0.05-0.25 touches frames 0, 1, 2; 0.9-5.0 covers frame 9 (rest is outside)
    assert t[:, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    # b: exactly frame 3 (boundaries do not spill into frames 2 or 4)
    assert t[:, 1].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_frame_targets_half_rule():
    ev = [Event(0.05, 0.25, "a")]  # frame 0: 0.05 overlap (half), 1: full, 2: 0.05 (half)
    t = events_to_frame_targets(ev, ["a"], 4, 0.1, rule="half")
    assert t[:, 0].tolist() == [1, 1, 1, 0]
    t = events_to_frame_targets([Event(0.06, 0.24, "a")], ["a"], 4, 0.1, rule="half")
    assert t[:, 0].tolist() == [0, 1, 0, 0]
    t = events_to_frame_targets([Event(0.06, 0.24, "a")], ["a"], 4, 0.1, rule="any")
    assert t[:, 0].tolist() == [1, 1, 1, 0]


def test_frame_targets_zero_length_offset_and_errors():
    t = events_to_frame_targets([Event(0.35, 0.35, "a")], ["a"], 5, 0.1)
    assert t[:, 0].tolist() == [0, 0, 0, 1, 0]
    assert events_to_frame_targets([Event(0.35, 0.35, "a")], ["a"], 5, 0.1, rule="half").sum() == 0
    # offset_s shifts the frame grid; dicts and tuples are accepted
    t = events_to_frame_targets([{"onset": 2.0, "offset": 2.2, "event_label": "a"}], ["a"], 4, 0.1, offset_s=1.9)
    assert t[:, 0].tolist() == [0, 1, 1, 0]
    t = events_to_frame_targets([(0.0, 0.1, "a")], ["a"], 2, 0.1)
    assert t[:, 0].tolist() == [1, 0]
    with pytest.raises(ValueError, match="'cat' is not among"):
        events_to_frame_targets([Event(0, 1, "cat")], ["a"], 5, 0.1)
    with pytest.raises(ValueError, match="rule"):
        events_to_frame_targets([], ["a"], 5, 0.1, rule="most")
    assert events_to_frame_targets([], ["a", "b"], 0, 0.1).shape == (0, 2)


def test_frames_events_frames_round_trip():
    rng = np.random.default_rng(0)
    act = (rng.random((50, 3)) > 0.6).astype(np.float32)
    labels = ["a", "b", "c"]
    ev = frames_to_events(act, 0.02, labels)
    assert np.array_equal(events_to_frame_targets(ev, labels, 50, 0.02), act)


# ----------------------------------------------------------------------------------------- files
def test_tsv_round_trip(tmp_path):
    data = {
        "a/x.wav": [Event(1.5, 2.25, "Dog"), Event(0.0, 0.5, "Speech")],
        "y.wav": [Event(3.0, 4.0, "Alarm_bell_ringing")],
    }
    path = write_events_tsv(tmp_path / "out" / "ev.tsv", data)
    lines = path.read_text().splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_label"
    assert lines[1] == "a/x.wav\t0\t0.5\tSpeech"  # sorted by onset, trailing zeros stripped
    assert len(lines) == 4
    back = read_events_tsv(path)
    assert back == {k: sorted(v, key=lambda e: e.onset) for k, v in data.items()}
    assert read_events(path) == back


def test_tsv_flat_list_with_filenames_and_rounding(tmp_path):
    ev = frames_to_events(curve(0, 1, 1), 1 / 3, ["a"], filename="f.wav")
    path = write_events_tsv(tmp_path / "e.tsv", ev)
    assert path.read_text().splitlines()[1] == "f.wav\t0.333\t1\ta"
    assert read_events_tsv(path) == {"f.wav": [Event(0.333, 1.0, "a")]}
    assert events_by_file(ev) == {"f.wav": [Event(ev[0].onset, 1.0, "a")]}
    with pytest.raises(ValueError, match="no filename"):
        write_events_tsv(tmp_path / "bad.tsv", [Event(0, 1, "a")])


def test_tsv_reader_column_order_empty_rows_and_errors(tmp_path):
    p = tmp_path / "ref.tsv"
    p.write_text("event_label\tfilename\toffset\tonset\nDog\tb.wav\t2.0\t1.0\n\t c.wav \t\t\n\n")
    assert read_events_tsv(p) == {"b.wav": [Event(1.0, 2.0, "Dog")], "c.wav": []}
    bad = tmp_path / "bad.tsv"
    bad.write_text("filename,onset,offset,event_label\nx,0,1,a\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_events_tsv(bad)
    bad.write_text("filename\tonset\toffset\tevent_label\nx\tzero\t1\ta\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        read_events_tsv(bad)
    bad.write_text("filename\tonset\toffset\tevent_label\nx\t2\t1\ta\n")
    with pytest.raises(ValueError, match="onset <= offset"):
        read_events_tsv(bad)
    with pytest.raises(FileNotFoundError):
        read_events_tsv(tmp_path / "missing.tsv")


def test_json_round_trip_keeps_empty_files(tmp_path):
    data = {"x.wav": [Event(0.25, 1.0, "a")], "silent.wav": []}
    path = write_events_json(tmp_path / "ev.json", data, extra={"errors": {}})
    doc = json.loads(path.read_text())
    assert doc["files"]["x.wav"] == [{"onset": 0.25, "offset": 1.0, "event_label": "a"}]
    assert doc["errors"] == {}
    assert read_events_json(path) == data
    assert read_events(path) == data
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"y.wav": [{"onset": 1, "offset": 2, "label": "b"}]}))
    assert read_events_json(bare) == {"y.wav": [Event(1.0, 2.0, "b")]}
    bare.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected"):
        read_events_json(bare)


def test_as_event_forms():
    assert as_event({"onset": 1, "offset": 2, "event_label": "a", "filename": "f"}) == FileEvent(1.0, 2.0, "a", "f")
    assert as_event((1, 2, "a")) == Event(1.0, 2.0, "a")
    with pytest.raises(TypeError, match="cannot read an event"):
        as_event({"onset": 1})

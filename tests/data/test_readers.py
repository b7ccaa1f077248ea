"""Dataset readers on tiny copies of each standard layout, written to ``tmp_path``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflex.data import (
    ClipRecord,
    DatasetError,
    Event,
    LabelSet,
    detect_kind,
    read_audioset,
    read_dataset,
    read_esc50,
    read_folder,
    read_manifest,
    read_speech_commands,
    read_strong_labels,
    with_durations,
)
from audioflex.data.readers import index_audio_dir, split_labels


def wav(path: Path, seconds: float = 0.05, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr, subtype="PCM_16")
    return path


# ------------------------------------------------------------------------------------ records


def test_labelset_encoding_and_ids() -> None:
    ls = LabelSet(["Speech", "Dog", "Music, live"], ids=["/m/09x0r", "/m/0bt9lr", "/m/x"])
    assert len(ls) == 3 and ls.index("Dog") == 1 and ls.index("/m/0bt9lr") == 1
    assert ls.encode(["Speech", "Music, live"]).tolist() == [1.0, 0.0, 1.0]
    assert ls.encode_batch([["Dog"], []]).tolist() == [[0, 1, 0], [0, 0, 0]]
    assert ls.decode(torch.tensor([0.2, 0.9, 0.5])) == ("Dog", "Music, live")
    assert ls.class_index(["Dog"]) == 1
    with pytest.raises(KeyError, match="unknown label 'Cat'"):
        ls.index("Cat")
    with pytest.raises(ValueError, match="appears twice"):
        LabelSet(["a", "b", "a"])


def test_clip_record_defaults_and_validation(tmp_path: Path) -> None:
    r = ClipRecord(
        path=str(tmp_path / "x.wav"),
        labels=["b", "a"],
        events=[Event(2, 3, "b"), Event(0.5, 1, "a")],
    )
    assert r.id == "x" and r.labels == ("b", "a") and isinstance(r.path, Path)
    assert [e.label for e in r.events] == ["a", "b"]  # sorted by onset
    assert ClipRecord(path=tmp_path / "y.wav", start=30.0, end=40.0).clip_duration == 10.0
    with pytest.raises(ValueError, match="split"):
        ClipRecord(path=tmp_path / "x.wav", split="training")
    with pytest.raises(TypeError, match="labels"):
        ClipRecord(path=tmp_path / "x.wav", labels="dog")
    with pytest.raises(ValueError, match="onset"):
        Event(2.0, 1.0, "dog")


def test_with_durations_reads_headers_lazily(tmp_path: Path) -> None:
    a = ClipRecord(path=wav(tmp_path / "a.wav", 0.25))
    b = ClipRecord(path=wav(tmp_path / "b.wav", 0.5), duration=9.0)
    out = with_durations([a, b])
    assert out[0].duration == pytest.approx(0.25) and out[1].duration == 9.0
    assert with_durations([b], overwrite=True)[0].duration == pytest.approx(0.5)
    gone = ClipRecord(path=tmp_path / "gone.wav")
    with pytest.raises(ValueError, match="gone.wav"):
        with_durations([gone])
    assert with_durations([gone], errors="warn")[0].duration is None


# ------------------------------------------------------------------------------------- ESC-50


def make_esc50(root: Path, drop: str | None = None) -> None:
    rows = [
        ("1-100-A-0.wav", 1, 0, "dog", "True"),
        ("1-101-A-1.wav", 1, 1, "rooster", "False"),
        ("2-102-A-0.wav", 2, 0, "dog", "True"),
        ("3-103-A-2.wav", 3, 2, "pig", "False"),
        ("5-104-B-1.wav", 5, 1, "rooster", "False"),
    ]
    (root / "meta").mkdir(parents=True)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for fn, fold, target, cat, e10 in rows:
        lines.append(f"{fn},{fold},{target},{cat},{e10},{fn.split('-')[1]},{fn.split('-')[2]}")
        if fn != drop:
            wav(root / "audio" / fn)
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")


def test_esc50_records_labels_folds(tmp_path: Path) -> None:
    make_esc50(tmp_path)
    res = read_dataset(tmp_path)
    assert res.kind == "esc50" and res.label_names == ["dog", "rooster", "pig"]  # ordered by target
    assert len(res) == 5 and not res.missing
    r = res.records[3]
    assert r.path == tmp_path / "audio" / "3-103-A-2.wav" and r.labels == ("pig",) and r.fold == 3
    assert r.id == "3-103-A-2"
    assert [x.fold for x in res.select(exclude_folds=[1])] == [2, 3, 5]
    assert read_esc50(tmp_path, esc10=True).label_names == ["dog"]


def test_esc50_missing_file_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_esc50(tmp_path, drop="2-102-A-0.wav")
    with caplog.at_level(logging.WARNING):
        res = read_esc50(tmp_path)
    assert len(res) == 4 and res.missing == ["2-102-A-0.wav"]
    assert "1 of 5" in caplog.text and "2-102-A-0.wav" in caplog.text and res.warnings


def test_esc50_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    make_esc50(tmp_path)
    meta = tmp_path / "meta" / "esc50.csv"
    meta.write_text(meta.read_text() + "9-1-A-0.wav,one,0,dog,True,1,A\n")
    with pytest.raises(DatasetError, match=r"esc50\.csv:7: fold must be an integer"):
        read_esc50(tmp_path)
    meta.write_text(
        "filename,fold,target,category,esc10,src_file,take\n1-100-A-0.wav,1,0,dog,True,100,A\n"
        "1-101-A-1.wav,1,0,cat,False,101,A\n"
    )
    with pytest.raises(DatasetError, match=r"esc50\.csv:3: target 0 is 'cat'"):
        read_esc50(tmp_path)


# ---------------------------------------------------------------------------- Speech Commands


def test_speech_commands_splits_and_background_exclusion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for rel in [
        "yes/aa11_nohash_0.wav",
        "yes/bb22_nohash_0.wav",
        "yes/cc33_nohash_1.wav",
        "no/aa11_nohash_0.wav",
        "no/dd44_nohash_0.wav",
        "_background_noise_/white_noise.wav",
    ]:
        wav(tmp_path / rel)
    (tmp_path / "_background_noise_" / "README.md").write_text("noise")
    (tmp_path / "LICENSE").write_text("cc-by")
    (tmp_path / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/dd44_nohash_0.wav\nyes/zz99_nohash_0.wav\n")
    assert detect_kind(tmp_path)[0] == "speechcommands"
    with caplog.at_level(logging.WARNING):
        res = read_dataset(tmp_path)
    assert res.label_names == ["no", "yes"]
    splits = {r.id: r.split for r in res}
    assert splits == {
        "yes/aa11_nohash_0": "train",
        "yes/bb22_nohash_0": "valid",
        "yes/cc33_nohash_1": "train",
        "no/aa11_nohash_0": "train",
        "no/dd44_nohash_0": "test",
    }
    assert all("_background_noise_" not in str(r.path) for r in res)
    assert res.missing == ["yes/zz99_nohash_0.wav"] and "zz99" in caplog.text
    assert [r.id for r in res.select(split="validation")] == ["yes/bb22_nohash_0"]
    assert read_speech_commands(tmp_path, classes=["yes"]).label_names == ["yes"]


# ------------------------------------------------------------------------------------ AudioSet

LABELS_CSV = """index,mid,display_name
0,/m/09x0r,"Speech"
1,/m/05zppz,"Male speech, man speaking"
2,/m/0jbk,"Animal"
3,/m/068hy,"Domestic animals, pets"
"""

BALANCED = """# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=4, num_segs=4, num_unique_labels=4, num_positive_labels=7
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz"
-0DLPzsiXXE, 30.000, 40.000, "/m/0jbk,/m/068hy"
Yabcdefghij, 0.000, 6.500, "/m/0jbk"
missing0001, 10.000, 20.000, "/m/09x0r"
"""

EVAL = """# Segments csv created Sun Mar  5 10:54:25 2017
# num_ytids=1, num_segs=1, num_unique_labels=1, num_positive_labels=1
# YTID, start_seconds, end_seconds, positive_labels
evalclip_01, 5.000, 15.000, "/m/068hy"
"""


def make_audioset(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "class_labels_indices.csv").write_text(LABELS_CSV)
    (root / "balanced_train_segments.csv").write_text(BALANCED)
    (root / "eval_segments.csv").write_text(EVAL)
    wav(root / "audio" / "balanced" / "--PJHxphWEs_30000_40000.wav")  # YTID_start_end (ms)
    wav(root / "audio" / "balanced" / "Y-0DLPzsiXXE.wav")  # PANNs style "Y<YTID>"
    (root / "audio" / "balanced" / "Yabcdefghij.flac").write_bytes(b"")  # YTID itself starts with Y
    wav(root / "audio" / "eval" / "evalclip_01_5.000_15.000.wav")  # float times
    (root / "audio" / "eval" / "notes.txt").write_text("not audio")


def test_audioset_quoting_labels_and_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_audioset(tmp_path)
    with caplog.at_level(logging.WARNING):
        res = read_dataset(tmp_path)
    assert res.kind == "audioset"
    assert res.label_names == [
        "Speech",
        "Male speech, man speaking",
        "Animal",
        "Domestic animals, pets",
    ]
    assert res.labels.ids == ("/m/09x0r", "/m/05zppz", "/m/0jbk", "/m/068hy")
    by_id = {r.id: r for r in res}
    assert set(by_id) == {"--PJHxphWEs", "-0DLPzsiXXE", "Yabcdefghij", "evalclip_01"}
    assert by_id["--PJHxphWEs"].labels == ("Speech", "Male speech, man speaking")
    assert by_id["-0DLPzsiXXE"].path.name == "Y-0DLPzsiXXE.wav"
    assert by_id["Yabcdefghij"].path.suffix == ".flac" and by_id["Yabcdefghij"].duration == 6.5
    assert by_id["--PJHxphWEs"].split == "train" and by_id["evalclip_01"].split == "test"
    assert by_id["evalclip_01"].start == 0.0 and by_id["evalclip_01"].end is None
    assert res.missing == ["missing0001"]
    assert "1 of 4 segments of balanced_train_segments.csv" in caplog.text
    assert res.labels.encode(by_id["-0DLPzsiXXE"].labels).tolist() == [0, 0, 1, 1]


def test_audioset_full_videos_and_single_csv(tmp_path: Path) -> None:
    make_audioset(tmp_path)
    res = read_audioset(tmp_path, full_videos=True, segments="eval_segments.csv")
    (r,) = res.records
    assert (r.start, r.end, r.duration, r.split) == (5.0, 15.0, None, "test")
    res2 = read_dataset(tmp_path / "eval_segments.csv")  # a segment CSV given directly
    assert [x.id for x in res2] == ["evalclip_01"]


def test_audioset_malformed_rows(tmp_path: Path) -> None:
    make_audioset(tmp_path)
    seg = tmp_path / "eval_segments.csv"
    seg.write_text(EVAL + "badclip_001, 0.000, 10.000, /m/09x0r,/m/0jbk\n")  # labels not quoted
    with pytest.raises(DatasetError, match=r"eval_segments\.csv:5: expected 4 fields"):
        read_audioset(tmp_path)
    seg.write_text(EVAL + 'badclip_001, 0.000, 10.000, "/m/nope"\n')
    with pytest.raises(DatasetError, match=r"eval_segments\.csv:5: label '/m/nope'"):
        read_audioset(tmp_path)
    seg.write_text(EVAL + 'badclip_001, ten, 10.000, "/m/09x0r"\n')
    with pytest.raises(DatasetError, match=r"eval_segments\.csv:5: start_seconds must be a number"):
        read_audioset(tmp_path)


def test_audioset_index_prefers_exact_name(tmp_path: Path) -> None:
    wav(tmp_path / "abc_def_123.wav")  # a YTID containing "_<digits>" must still match exactly
    wav(tmp_path / "abc_def.wav")
    idx = index_audio_dir(tmp_path)
    assert idx["abc_def_123"].name == "abc_def_123.wav" and idx["abc_def"].name == "abc_def.wav"


# ---------------------------------------------------------------------------------- DESED / strong

DESED_TSV = (
    "filename\tonset\toffset\tevent_label\n"
    "Y1.wav\t0.5\t2.0\tSpeech\n"
    "Y2.wav\t\t\t\n"
    "Y1.wav\t3.0\t4.25\tDog\n"
    "Y1.wav\t0.0\t1.0\tSpeech\n"
    "Y3.wav\t\t\tBlender\n"
    "Y4.wav\t1\t2\tDishes\n"
)


def test_strong_labels_grouped_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    meta = tmp_path / "metadata" / "validation.tsv"
    meta.parent.mkdir()
    meta.write_text(DESED_TSV)
    audio = tmp_path / "audio" / "validation"
    for n in ("Y1.wav", "Y2.wav", "Y3.wav"):
        wav(audio / n)
    assert detect_kind(meta)[0] == "strong"
    with caplog.at_level(logging.WARNING):
        res = read_dataset(meta, audio_dir=audio, split="validation")
    assert res.label_names == ["Blender", "Dishes", "Dog", "Speech"]
    by_id = {r.id: r for r in res}
    assert list(by_id) == ["Y1", "Y2", "Y3"]
    y1 = by_id["Y1"]
    assert y1.labels == ("Dog", "Speech") and y1.split == "valid" and y1.path == audio / "Y1.wav"
    assert y1.events == (
        Event(0.0, 1.0, "Speech"),
        Event(0.5, 2.0, "Speech"),
        Event(3.0, 4.25, "Dog"),
    )
    assert by_id["Y2"].labels == () and by_id["Y2"].events == ()  # no event
    assert by_id["Y3"].labels == ("Blender",) and by_id["Y3"].events == ()  # weak row
    assert res.missing == ["Y4.wav"] and "Y4.wav" in caplog.text


def test_strong_labels_weak_format_and_errors(tmp_path: Path) -> None:
    weak = tmp_path / "weak.tsv"
    weak.write_text("filename\tevent_labels\na.wav\tDog,Speech\nb.wav\tCat\n")
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    res = read_dataset(weak)
    assert res.kind == "strong" and [r.labels for r in res] == [("Dog", "Speech"), ("Cat",)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("filename\tonset\toffset\tevent_label\na.wav\t2.0\t1.0\tDog\n")
    with pytest.raises(DatasetError, match=r"bad\.tsv:2: need 0 <= onset <= offset"):
        read_strong_labels(bad)
    bad.write_text("filename\tonset\toffset\tevent_label\na.wav\t1.0\t\tDog\n")
    with pytest.raises(DatasetError, match=r"bad\.tsv:2: give both onset and offset"):
        read_strong_labels(bad)


# ---------------------------------------------------------------------------------- manifests


def test_split_labels_separators() -> None:
    assert split_labels("dog;Male speech, man speaking") == ("dog", "Male speech, man speaking")
    assert split_labels("dog, cat") == ("dog", "cat")
    assert split_labels("") == ()


def test_csv_manifest_multilabel_both_separators(tmp_path: Path) -> None:
    wav(tmp_path / "clips" / "a.wav")
    wav(tmp_path / "clips" / "b.flac")
    wav(tmp_path / "c.wav")
    absolute = wav(tmp_path / "elsewhere" / "d.wav")
    m = tmp_path / "manifest.csv"
    m.write_text(
        "path,labels,split\n"
        'clips/a.wav,"dog,cat",train\n'
        "clips/b.flac,dog;bird,valid\n"
        "c.wav,cat,test\n"
        f"{absolute},bird,eval\n"
        "clips/nope.wav,dog,train\n"
    )
    res = read_dataset(tmp_path)  # a directory holding manifest.csv
    assert res.kind == "manifest" and res.label_names == ["bird", "cat", "dog"]
    assert [r.labels for r in res] == [("dog", "cat"), ("dog", "bird"), ("cat",), ("bird",)]
    assert [r.split for r in res] == ["train", "valid", "test", "test"]
    assert res.records[0].path == tmp_path / "clips" / "a.wav" and res.records[0].id == "clips/a"
    assert res.records[3].path == absolute
    assert res.missing == [str(tmp_path / "clips" / "nope.wav")]


def test_tsv_manifest_folds_and_fixed_vocabulary(tmp_path: Path) -> None:
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    m = tmp_path / "list.tsv"
    m.write_text("filename\tlabel\tfold\na.wav\tdog, cat\t1\nb.wav\tcat\t2\n")
    res = read_manifest(m, labels=["dog", "cat", "cow"])
    assert res.label_names == ["dog", "cat", "cow"] and [r.fold for r in res] == [1, 2]
    assert res.records[0].labels == ("dog", "cat")
    with pytest.raises(DatasetError, match="'cat'.*not in the given labels"):
        read_manifest(m, labels=["dog"])


def test_jsonl_manifest(tmp_path: Path) -> None:
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    m = tmp_path / "train.jsonl"
    rows = [
        {"path": "a.wav", "labels": ["dog", "cat"], "split": "train", "duration": 0.05},
        {
            "path": "b.wav",
            "labels": "cat",
            "split": "val",
            "events": [{"onset": 0.0, "offset": 0.02, "label": "cow"}],
        },
    ]
    m.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    res = read_dataset(m)
    assert res.label_names == ["cat", "cow", "dog"]
    assert res.records[0].labels == ("dog", "cat") and res.records[0].duration == 0.05
    assert res.records[1].split == "valid" and res.records[1].labels == ("cat", "cow")
    assert res.records[1].events == (Event(0.0, 0.02, "cow"),)


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("m.csv", "path,labels\na.wav,dog,cat\n", r"m\.csv:2: expected 2 fields .* got 3; quote"),
        (
            "m.csv",
            "path,labels,split\na.wav,dog,train\nb.wav,dog,holdout\n",
            r"m\.csv:3: unknown split 'holdout'",
        ),
        ("m.csv", "path,labels,fold\na.wav,dog,x\n", r"m\.csv:2: fold must be an integer"),
        ("m.csv", "name,labels\na.wav,dog\n", r"m\.csv:1: no path column"),
        (
            "m.jsonl",
            '{"path": "a.wav", "labels": ["dog"]}\n{"path": "b.wav", \n',
            r"m\.jsonl:2: not valid JSON",
        ),
        (
            "m.jsonl",
            '{"path": "a.wav", "labels": 3}\n',
            r"m\.jsonl:1: 'labels' must be a string or a list",
        ),
        ("m.jsonl", '["a.wav", "dog"]\n', r"m\.jsonl:1: each line must be a JSON object"),
    ],
)
def test_manifest_malformed_rows(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError, match=pattern):
        read_manifest(tmp_path / name)


# -------------------------------------------------------------------------------- folder tree


def test_folder_per_class(tmp_path: Path) -> None:
    wav(tmp_path / "dog" / "1.wav")
    wav(tmp_path / "dog" / "sub" / "2.flac")
    (tmp_path / "dog" / "readme.txt").write_text("x")
    wav(tmp_path / "cat" / "3.wav")
    wav(tmp_path / "_ignored" / "4.wav")
    (tmp_path / "empty").mkdir()
    res = read_dataset(tmp_path)
    assert res.kind == "folder" and res.label_names == ["cat", "dog"]
    assert sorted(r.id for r in res) == ["cat/3", "dog/1", "dog/sub/2"]
    assert all(r.split is None for r in res)


def test_folder_with_split_dirs_and_errors(tmp_path: Path) -> None:
    wav(tmp_path / "train" / "dog" / "1.wav")
    wav(tmp_path / "val" / "cat" / "2.wav")
    res = read_folder(tmp_path)
    assert {(r.split, r.labels) for r in res} == {("train", ("dog",)), ("valid", ("cat",))}
    with pytest.raises(DatasetError, match="no audio files"):
        read_folder(tmp_path / "val" / "cat")
    with pytest.raises(ValueError, match="unknown kind 'mp3dir'"):
        read_dataset(tmp_path, kind="mp3dir")
    with pytest.raises(DatasetError, match="no such file or directory"):
        read_dataset(tmp_path / "nothing")


def test_audioset_duplicate_display_names_and_segment_csv_kind(tmp_path: Path) -> None:
    make_audioset(tmp_path)
    (tmp_path / "class_labels_indices.csv").write_text(LABELS_CSV + '4,/m/dup1,"Animal"\n')
    res = read_dataset(tmp_path / "eval_segments.csv", kind="audioset")
    assert res.label_names[2] == "Animal (/m/0jbk)" and res.label_names[4] == "Animal (/m/dup1)"
    assert [r.id for r in res] == ["evalclip_01"]
    assert res.labels.index("/m/dup1") == 4

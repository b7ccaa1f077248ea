"""Datasets as users have them: ESC-50 variants, DESED release and flat layouts, split files,
audio_dir, and a folder dataset of one class (an error naming the metadata it ignored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflex.data import DatasetError, Event, detect_kind, read_dataset


def wav(path: Path, seconds: float = 0.05, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr, subtype="PCM_16")
    return path


def esc50_variant(root: Path, where: str = "meta.csv", label: str = "label", duration: str = "duration_s") -> Path:
    lines = [f"filename,fold,{label},{duration}"]
    for i in range(10):
        name = f"{i}-{i}-A-{i % 2}.wav"
        wav(root / "audio" / name)
        lines.append(f"{name},{i % 5 + 1},{['dog', 'rain'][i % 2]},5.0")
    meta = root / where
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text("\n".join(lines) + "\n")
    return meta


@pytest.mark.parametrize(("where", "label", "duration"),
                         [("meta.csv", "label", "duration_s"), ("meta/clips.csv", "category", "duration")])
def test_esc50_variants_read_from_the_folder_or_the_csv(tmp_path: Path, where: str, label: str,
                                                        duration: str) -> None:
    meta = esc50_variant(tmp_path, where, label, duration)
    for spec in (tmp_path, meta):
        res = read_dataset(spec)
        assert res.kind == "esc50" and res.label_names == ["dog", "rain"], spec
        assert len(res) == 10 and not res.missing and not res.warnings
        assert sorted({r.fold for r in res}) == [1, 2, 3, 4, 5]
        assert all(r.duration == 5.0 and r.path.parent == tmp_path / "audio" for r in res)
        assert len(res.select(exclude_folds=[1])) == 8


def test_esc50_target_only_and_audio_dir(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("filename,fold,target\na.wav,1,3\nb.wav,2,7\n")
    wav(tmp_path / "elsewhere" / "a.wav")
    wav(tmp_path / "elsewhere" / "b.wav")
    res = read_dataset(tmp_path / "table.csv")
    assert len(res) == 0 and "--audio-dir" in res.warnings[0]
    res = read_dataset(tmp_path / "table.csv", audio_dir=tmp_path / "elsewhere")
    assert res.label_names == ["3", "7"] and [r.path.parent.name for r in res] == ["elsewhere"] * 2


def desed_flat(root: Path) -> None:
    strong = ["filename\tonset\toffset\tevent_label"]
    weak = ["filename\tevent_labels"]
    split = ["filename,split"]
    for i, s in enumerate(["train", "train", "validation", "eval"]):
        name = f"{s}_{i}.wav"
        wav(root / "audio" / name, 1.0)
        strong.append(f"{name}\t0.100\t0.500\tSpeech")
        strong.append(f"{name}\t0.200\t0.900\tAlarm")
        weak.append(f"{name}\tAlarm,Speech")
        split.append(f"{name},{s}")
    (root / "meta.tsv").write_text("\n".join(strong) + "\n")
    (root / "weak.tsv").write_text("\n".join(weak) + "\n")
    (root / "split.csv").write_text("\n".join(split) + "\n")


def test_desed_flat_layout_with_split_csv(tmp_path: Path) -> None:
    desed_flat(tmp_path)
    assert detect_kind(tmp_path)[0] == "desed"
    res = read_dataset(tmp_path)
    assert res.label_names == ["Alarm", "Speech"] and len(res) == 4 and not res.missing
    assert res.split_counts() == {"train": 2, "valid": 1, "test": 1}
    r = res.select(split="test")[0]
    assert r.events == (Event(0.1, 0.5, "Speech"), Event(0.2, 0.9, "Alarm")) and r.labels == ("Alarm", "Speech")
    # the strong TSV given itself finds the audio beside it and honours split.csv too
    res = read_dataset(tmp_path / "meta.tsv")
    assert res.kind == "strong" and len(res) == 4 and len(res.select(split="train")) == 2


def test_desed_release_layout(tmp_path: Path) -> None:
    for s in ("train", "validation", "eval"):
        rows = ["filename\tonset\toffset\tevent_label"]
        for i in range(2):
            name = f"{s}_{i}.wav"
            wav(tmp_path / "audio" / s / name, 1.0)
            rows.append(f"{name}\t0.0\t0.5\tDog")
        (tmp_path / "metadata" / s).mkdir(parents=True)
        (tmp_path / "metadata" / s / f"{s}.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "metadata" / "train" / "weak.tsv").write_text("filename\tevent_labels\ntrain_0.wav\tDog\n"
                                                             "weak_0.wav\tCat\n")
    wav(tmp_path / "audio" / "train" / "weak" / "weak_0.wav")
    (tmp_path / "metadata" / "eval" / "eval_durations.tsv").write_text("filename\tduration\neval_0.wav\t1.0\n")
    assert detect_kind(tmp_path) == ("desed", tmp_path)
    res = read_dataset(tmp_path)
    assert res.split_counts() == {"train": 3, "valid": 2, "test": 2} and not res.missing
    assert res.label_names == ["Cat", "Dog"]
    weak_only = next(r for r in res if r.id == "weak_0")
    assert weak_only.labels == ("Cat",) and weak_only.events == ()
    assert next(r for r in res if r.id == "eval_0").duration == 1.0
    # one TSV of the release layout, given itself, finds its audio/<split>/ folder
    one = read_dataset(tmp_path / "metadata" / "validation" / "validation.tsv")
    assert len(one) == 2 and not one.missing


def test_one_class_folder_is_an_error_naming_the_metadata(tmp_path: Path) -> None:
    for i in range(3):
        wav(tmp_path / "audio" / f"{i}.wav")
    (tmp_path / "notes.txt").write_text("my labels are elsewhere\n")
    with pytest.raises(DatasetError, match=r"one class \('audio', 3 files\).*notes.txt"):
        read_dataset(tmp_path)


def test_split_selection_never_relabels(tmp_path: Path) -> None:
    desed_flat(tmp_path)
    (tmp_path / "split.csv").unlink()
    res = read_dataset(tmp_path)
    assert all(r.split is None for r in res)
    with pytest.raises(ValueError, match="none of its 4 clips has a split.*split.csv"):
        res.select(split="train")


def test_list_files_and_split_column(tmp_path: Path) -> None:
    lines = ["path,label,split"]
    for i in range(4):
        wav(tmp_path / "audio" / f"{i}.wav")
        lines.append(f"{i}.wav,{'ab'[i % 2]},{'train' if i < 3 else 'test'}")
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    res = read_dataset(tmp_path)  # the one labelled CSV, audio found in audio/
    assert res.kind == "manifest" and res.split_counts() == {"train": 3, "test": 1}
    # a list file that disagrees with the split column does not relabel
    (tmp_path / "validation_list.txt").unlink(missing_ok=True)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "validation_list.txt").write_text("0.wav\n")
    res = read_dataset(tmp_path)
    assert res.split_counts() == {"train": 3, "test": 1} and "kept it" in res.warnings[0]


def test_manifest_audio_dir_option(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("filename,label\nx.wav,a\ny.wav,b\n")
    wav(tmp_path / "store" / "x.wav")
    wav(tmp_path / "store" / "y.wav")
    assert len(read_dataset(tmp_path / "m.csv")) == 0
    res = read_dataset(tmp_path / "m.csv", audio_dir=tmp_path / "store")
    assert [r.path for r in res] == [tmp_path / "store" / "x.wav", tmp_path / "store" / "y.wav"]
    with pytest.raises(DatasetError, match="audio_dir is not a directory"):
        read_dataset(tmp_path / "m.csv", audio_dir=tmp_path / "nope")


def test_inspect_summary(tmp_path: Path) -> None:
    from audioflex.data.inspect import inspect_dataset

    desed_flat(tmp_path)
    (tmp_path / "audio" / "eval_3.wav").write_bytes(b"not audio")
    summary = inspect_dataset(read_dataset(tmp_path))
    text = "\n".join(summary.lines())
    assert "kind desed" in text and "4 clips, 2 classes" in text
    assert "train 2, valid 1, test 1" in text
    assert "clips by number of events: 2: 4" in text
    assert "unreadable files: 1" in text and "eval_3.wav" in text
    assert "1-2    s       3" in text and "total 0.1 min" in text  # three readable 1 s files
    json_ready = summary.to_dict()
    assert json_ready["num_events"] == 8


def test_inspect_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from audioflex.cli import app

    meta = esc50_variant(tmp_path)
    res = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "kind esc50" in res.output and "fold 1" in res.output and "dog" in res.output
    res = CliRunner().invoke(app, ["inspect", str(meta), "--audio-dir", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "audio_dir is not a directory" in res.output

"""Shipped class-name sets (AudioSet, Speech Commands V2, ESC-50) and `audioflex convert --labels`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from audioflex.checkpoints import load_checkpoint
from audioflex.checkpoints.convert.base import ConversionError
from audioflex.checkpoints.convert.labels import (
    LABEL_SETS,
    auto_label_set,
    choose_labels,
    load_label_set,
    read_label_csv,
    read_labels_file,
)
from audioflex.cli import app

runner = CliRunner()


@pytest.mark.parametrize("name,count", [("audioset", 527), ("speechcommands", 35), ("esc50", 50)])
def test_label_sets_are_package_data_with_indices_in_order(name, count):
    spec = LABEL_SETS[name]
    res = resources.files("audioflex.checkpoints").joinpath("labels", spec.filename)
    assert res.is_file()
    rows = read_label_csv(res.read_text(encoding="utf-8"))  # checks header and indices 0..N-1
    assert len(rows) == count == spec.num_classes
    names = load_label_set(name)
    assert names == [n for _, n in rows] and len(set(names)) == count
    assert all(n == n.strip() and n for n in names)


def test_well_known_entries():
    aset = read_label_csv(
        resources.files("audioflex.checkpoints").joinpath("labels", "audioset_class_labels_indices.csv").read_text()
    )
    assert aset[0] == ("/m/09x0r", "Speech")
    assert aset[1] == ("/m/05zppz", "Male speech, man speaking")  # a quoted name with a comma
    assert aset[137] == ("/m/04rlf", "Music")
    assert aset[472][1] == "Whip"  # HTS-AT README example output: 137 Music, 0 Speech, 472 Whip
    assert aset[72] == ("/m/0jbk", "Animal") and aset[74] == ("/m/0bt9lr", "Dog")
    assert aset[300] == ("/m/07yv9", "Vehicle") and aset[500] == ("/m/028v0c", "Silence")
    assert aset[526] == ("/m/07hvw1", "Field recording")
    sc = load_label_set("speechcommands")
    assert sc[:4] == ["backward", "follow", "five", "bed"] and sc[34] == "one"
    assert {"yes", "no", "marvin", "sheila", "visual", "learn"} <= set(sc)
    esc = load_label_set("esc50")  # ESC-50 meta/esc50.csv target order
    assert esc[0] == "dog" and esc[1] == "rooster" and esc[13] == "crickets" and esc[49] == "hand_saw"
    assert esc[10] == "rain" and esc[40] == "helicopter"


def test_csv_and_file_errors(tmp_path):
    with pytest.raises(ConversionError, match="header"):
        read_label_csv("a,b,c\n0,x,y\n", "f.csv")
    with pytest.raises(ConversionError, match=r"f\.csv: row 3"):
        read_label_csv("index,mid,display_name\n0,/m/a,A\n2,/m/b,B\n", "f.csv")
    plain = tmp_path / "names.txt"
    plain.write_text("cat\n\n dog \n")
    assert read_labels_file(plain) == ["cat", "dog"]
    as_csv = tmp_path / "names.csv"
    as_csv.write_text('index,mid,display_name\n0,/m/a,"A, a"\n1,/m/b,B\n')
    assert read_labels_file(as_csv) == ["A, a", "B"]
    with pytest.raises(ConversionError, match="unknown label set"):
        load_label_set("imagenet")


def test_choose_labels_precedence_and_auto_pick(tmp_path):
    assert auto_label_set(527) == "audioset"
    assert auto_label_set(50) is None and auto_label_set(35) is None and auto_label_set(None) is None
    names, notes = choose_labels(None, None, 527)
    assert names == load_label_set("audioset") and "audioset" in notes[0] and "527" in notes[0]
    names, notes = choose_labels(None, None, 50)  # 50 outputs do not identify ESC-50
    assert names is None and "--labels" in notes[0]
    own = [f"c{i}" for i in range(527)]
    assert choose_labels(None, own, 527)[0] == own  # the source's names win over the auto-pick
    assert choose_labels("esc50", None, 50)[0][0] == "dog"
    assert choose_labels("SpeechCommands", own[:35], 35)[0][0] == "backward"  # --labels wins
    with pytest.raises(ConversionError, match="50 names but the checkpoint has 527"):
        choose_labels("esc50", None, 527)
    with pytest.raises(ConversionError, match="no such file and not a known label set"):
        choose_labels(str(tmp_path / "missing.txt"), None, 3)
    f = tmp_path / "audioset"  # an existing file is read even if it is named like a set
    f.write_text("a\nb\n")
    assert choose_labels(f, None, 2)[0] == ["a", "b"]


@pytest.fixture
def htsat_527(tmp_path, fixtures_dir) -> Path:
    """The HTS-AT fixture in the official format with a 527-class token-semantic head (random)."""
    sd = load_file(str(fixtures_dir / "htsat.safetensors"))
    g = torch.Generator().manual_seed(527)
    w = sd["sed_model.tscam_conv.weight"]
    sd["sed_model.tscam_conv.weight"] = torch.randn(527, *w.shape[1:], generator=g) * 0.05
    sd["sed_model.tscam_conv.bias"] = torch.randn(527, generator=g) * 0.1
    path = tmp_path / "htsat_527.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_convert_527_outputs_gets_audioset_names_and_tag_uses_them(htsat_527, tmp_path):
    out = tmp_path / "ck"
    res = runner.invoke(app, ["convert", "htsat", str(htsat_527), str(out)])
    assert res.exit_code == 0, res.output
    assert "using the audioset names" in res.output
    ck = load_checkpoint(out)
    assert ck.labels == load_label_set("audioset")
    wav = tmp_path / "noise.wav"
    sf.write(str(wav), (0.1 * torch.randn(2 * 32000, generator=torch.Generator().manual_seed(0))).numpy(), 32000)
    res = runner.invoke(app, ["tag", str(wav), "-c", str(out), "--json", "-k", "5"])
    assert res.exit_code == 0, res.output
    tags = json.loads(res.output)["files"][str(wav)]
    assert len(tags) == 5 and all(t["label"] in set(ck.labels) for t in tags)
    assert not any(t["label"].startswith("class_") for t in tags)


def test_convert_labels_option(htsat_527, tmp_path, fixtures_dir):
    # a wrong-sized set is one clear error, nothing written
    res = runner.invoke(app, ["convert", "htsat", str(htsat_527), str(tmp_path / "bad"), "--labels", "esc50"])
    assert res.exit_code == 1 and "50 names but the checkpoint has 527 outputs" in res.output
    assert not (tmp_path / "bad").exists()
    # --labels FILE still works (10-class fixture), and a set name selects a shipped set
    names = tmp_path / "ten.txt"
    names.write_text("\n".join(f"sound {i}" for i in range(10)) + "\n")
    res = runner.invoke(app, ["convert", "htsat", str(fixtures_dir / "htsat.safetensors"), str(tmp_path / "ten"),
                              "--labels", str(names)])
    assert res.exit_code == 0, res.output
    assert load_checkpoint(tmp_path / "ten").labels == [f"sound {i}" for i in range(10)]
    res = runner.invoke(app, ["convert", "htsat", str(fixtures_dir / "htsat.safetensors"), str(tmp_path / "none")])
    assert res.exit_code == 0 and "no class names in the checkpoint" in res.output
    assert load_checkpoint(tmp_path / "none").labels is None
    res = runner.invoke(app, ["convert", "htsat", str(htsat_527), str(tmp_path / "as"), "--labels", "audioset"])
    assert res.exit_code == 0 and "class names: audioset" in res.output
    assert load_checkpoint(tmp_path / "as").labels[137] == "Music"

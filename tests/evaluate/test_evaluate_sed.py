"""Event-dataset evaluation: sed_eval metrics of Pipeline.detect output, and `audioflex evaluate`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflex.apps.sed import EventScoring, evaluate_event_checkpoints, evaluate_events
from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.checkpoints.io import save_checkpoint
from audioflex.data.readers import read_dataset
from audioflex.evaluate.events import PostProcessing, events_by_file
from audioflex.evaluate.metrics import event_based_metrics, onset_event_metrics, segment_based_metrics
from audioflex.evaluate.scores import psds_from_scores, read_score_files
from audioflex.inference import Pipeline
from audioflex.models.registry import create_model

SR = 32000
LABELS = ["alarm", "dog", "speech"]
POST = PostProcessing(thresholds=0.5, median_filter_s=0.3, min_duration_s=0.1, merge_gap_s=0.2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    m = create_model("htsat_mini", embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=3, num_mel_bins=32,
                     spec_size=128, window_size=8, drop_path=0.0)
    with torch.no_grad():  # centre the random head so thresholds at 0.5 give some events
        m.tscam_conv.bias.zero_()
        m.tscam_conv.weight.mul_(30.0)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "htsat", m, frontend=LogMelConfig(n_mels=32),
                           labels=LABELS)


@pytest.fixture(scope="module")
def strong_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strong")
    rng = np.random.default_rng(0)
    rows = ["filename\tonset\toffset\tevent_label"]
    for i, seconds in enumerate((3.0, 7.5, 12.0)):  # the last is longer than HTS-AT's 5.12 s window here
        n = int(seconds * SR)
        t = np.arange(n) / SR
        x = 0.02 * rng.standard_normal(n)
        for k in range(int(seconds // 2)):
            on = 2.0 * k + rng.uniform(0.1, 0.6)
            off = on + rng.uniform(0.4, 1.2)
            lab = LABELS[(i + k) % 3]
            m = (t >= on) & (t < off)
            x[m] += 0.3 * np.sin(2 * np.pi * (400 + 300 * LABELS.index(lab)) * t[m])
            rows.append(f"clip{i}.wav\t{on:.3f}\t{off:.3f}\t{lab}")
        sf.write(root / f"clip{i}.wav", x.astype(np.float32), SR)
    (root / "strong.tsv").write_text("\n".join(rows) + "\n")
    return root / "strong.tsv"


def test_metrics_equal_direct_sed_eval_on_detect(ckpt: Path, strong_set: Path, tmp_path: Path) -> None:
    records = read_dataset(strong_set, kind="strong").records
    res = evaluate_events(ckpt, records, scoring=EventScoring(tune="none", post=POST), score_dir=tmp_path / "scores")
    json.dumps(res)  # JSON-ready
    pipe = Pipeline.from_checkpoint(ckpt)
    est = events_by_file(ev for r in records for ev in pipe.detect(r.path, POST))
    est = {r.path.stem: est.get(str(r.path), []) for r in records}
    ref = {r.path.stem: list(r.events) for r in records}
    assert res["num_estimated_events"] == sum(len(v) for v in est.values()) > 0
    assert res["num_reference_events"] == sum(len(v) for v in ref.values()) == 1 + 3 + 6
    ev = event_based_metrics(ref, est, t_collar=0.2, percentage_of_length=0.2, labels=LABELS)
    on = onset_event_metrics(ref, est, t_collar=0.2, labels=LABELS)
    durations = {r.path.stem: sf.info(str(r.path)).duration for r in records}
    seg = segment_based_metrics(ref, est, time_resolution=1.0, durations=durations, labels=LABELS)
    for key in ("f1", "precision", "recall", "error_rate", "f1_macro"):
        assert res["event_based"][key] == pytest.approx(ev[key], nan_ok=True)
        assert res["onset_based"][key] == pytest.approx(on[key], nan_ok=True)
        assert res["segment_based"][key] == pytest.approx(seg[key], nan_ok=True)
    assert res["event_based"]["class_wise"] == ev["class_wise"]
    # raw scores written as sed_scores_eval score files; PSDS1/2 from them
    scores = read_score_files(tmp_path / "scores" / "test")
    assert sorted(scores) == ["clip0", "clip1", "clip2"] and list(scores["clip0"].columns) == ["onset", "offset",
                                                                                              *LABELS]
    p1 = psds_from_scores(scores, ref, durations, scenario="psds1")
    assert res["psds1"]["psds"] == pytest.approx(p1["psds"], abs=1e-6) and 0 <= p1["psds"] <= 1
    assert res["psds2"]["settings"]["cttc_threshold"] == 0.3
    # the numbers are really computed (a different post-processing changes them)
    strict = EventScoring(tune="none", post=replace(POST, thresholds=0.99), psds=False)
    other = evaluate_events(ckpt, records, scoring=strict)
    assert other["num_estimated_events"] < res["num_estimated_events"]
    assert other["segment_based"]["f1"] != res["segment_based"]["f1"]
    assert other["psds1"] is None and other["psds_note"] == "PSDS not requested"


def test_tuned_on_validation_and_applied_to_test(ckpt: Path, strong_set: Path) -> None:
    records = read_dataset(strong_set, kind="strong").records
    fixed = evaluate_events(ckpt, records[1:], scoring=EventScoring(tune="none", psds=False,
                                                                    post=PostProcessing(thresholds=0.5)))
    tuned = evaluate_events(ckpt, records[1:], valid_records=records[1:], scoring=EventScoring(psds=False))
    assert "tuned on 2 validation files" in tuned["tuned_on"]
    thr = tuned["postprocessing"]["thresholds"]
    assert set(thr) == set(tuned["labels"]) and all(0 < v < 1 for v in thr.values())
    # tuning on the test clips themselves cannot do worse than the fixed 0.5 threshold
    assert tuned["event_based"]["f1_macro"] >= fixed["event_based"]["f1_macro"] - 1e-9
    assert tuned["tuning"]["validation_f1_macro"] == pytest.approx(tuned["event_based"]["f1_macro"], abs=1e-6)
    one = evaluate_events(ckpt, records[1:], valid_records=records[:1],
                          scoring=EventScoring(tune="global", psds=False))
    assert len(set(one["postprocessing"]["thresholds"].values())) == 1
    assert "one setting for all classes" in one["tuned_on"]


def test_event_checkpoints_report_and_bad_input(ckpt: Path, strong_set: Path, tmp_path: Path) -> None:
    records = read_dataset(strong_set, kind="strong").records
    lines: list[str] = []
    out = evaluate_event_checkpoints([ckpt], records, tmp_path / "ev", say=lines.append,
                                     scoring=EventScoring(tune="none", psds=False))
    doc = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert doc[0]["events"]["event_based"]["f1"] == out[str(ckpt)]["event_based"]["f1"]
    assert lines[0].startswith("htsat: PSDS1 n/a") and "event F1" in lines[0] and "onset F1" in lines[0]
    assert any(line.strip().startswith("alarm") for line in lines[1:])
    weak = [r.__class__(r.path, labels=r.labels) for r in records]
    with pytest.raises(ValueError, match="no strong labels"):
        evaluate_events(ckpt, weak)
    bad = [r.__class__(r.path, labels=("cat",), events=()) for r in records[:1]] + records[1:]
    with pytest.raises(ValueError, match="cat"):
        evaluate_events(ckpt, bad)
    with pytest.raises(ValueError, match="tune must be one of"):
        EventScoring(tune="sometimes")


def test_model_without_frame_head_is_skipped(strong_set: Path, tmp_path: Path) -> None:
    m = create_model("elastic_ast_tiny", embed_dim=32, depth=1, num_heads=2, num_classes=3, num_mel_bins=32,
                     max_time_patches=8)
    from audioflex.audio.frontend.kaldi import KaldiFbankConfig

    ck = save_checkpoint(tmp_path / "east", m, frontend=KaldiFbankConfig(num_mel_bins=32), labels=LABELS)
    records = read_dataset(strong_set, kind="strong").records
    with pytest.raises(ValueError, match="frame-wise head"):
        evaluate_events(ck, records)
    res = evaluate_event_checkpoints([ck], records, tmp_path / "none")
    assert "frame-wise head" in res[str(ck)]["skipped"]


def test_cli_evaluate_strong_labels(ckpt: Path, strong_set: Path, tmp_path: Path) -> None:
    """Event data: event metrics first (PSDS1/2, tuned F1), score files, no length sweep; a TSV
    without split is evaluated whole; with split.csv the post-processing is tuned on valid."""
    from typer.testing import CliRunner

    from audioflex.cli import app

    res = CliRunner().invoke(app, ["evaluate", str(ckpt), "-d", str(strong_set), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert "all records" in res.output and "PSDS1" in res.output and "fixed threshold 0.5" in res.output
    assert "by frame shift" not in res.output and not (tmp_path / "ev" / "metric_vs_length.png").exists()
    report = json.loads((tmp_path / "ev" / "report.json").read_text())[0]
    assert report["events"]["num_files"] == 3 and report["events"]["num_reference_events"] == 10
    assert len(list((tmp_path / "ev" / "scores" / "htsat" / "test").glob("*.tsv"))) == 3
    (strong_set.parent / "split.csv").write_text("filename,split\nclip0.wav,valid\nclip1.wav,test\nclip2.wav,test\n")
    try:
        res = CliRunner().invoke(app, ["evaluate", str(ckpt), "-d", str(strong_set), "--out", str(tmp_path / "e2"),
                                       "--tune", "global"])
    finally:
        (strong_set.parent / "split.csv").unlink()
    assert res.exit_code == 0, res.output
    assert "tuned on 1 validation files" in res.output and "split test" in res.output
    ev = json.loads((tmp_path / "e2" / "report.json").read_text())[0]["events"]
    assert ev["num_files"] == 2 and len(set(ev["postprocessing"]["thresholds"].values())) == 1
    res = CliRunner().invoke(app, ["evaluate", str(ckpt), "-d", str(strong_set), "--split", "test",
                                   "--out", str(tmp_path / "ev2")])
    assert res.exit_code == 1 and "none of its 3 clips has a split" in res.output

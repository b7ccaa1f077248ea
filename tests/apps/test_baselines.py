"""The trivial baselines (``audioflex evaluate --baseline``): they learn what is learnable from
their features, fail where the features carry nothing, and score like a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflex.apps.baselines.clip import band_statistics, evaluate_clip_baseline, fit_clip_baseline
from audioflex.apps.baselines.sed import evaluate_baseline
from audioflex.apps.sed import EventScoring
from audioflex.data.records import ClipRecord, Event

SR = 16000


def _tone(freq: float, seconds: float, rng: np.random.Generator, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return level * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))


def _clips(root: Path, n: int, seed: int, informative: bool = True) -> list[ClipRecord]:
    """Clips of 0.4-1.6 s: class ``low`` a 300 Hz tone, ``high`` a 2.5 kHz tone (``informative``),
    or the same noise for both classes (labels carry nothing the features could see)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        label = ("low", "high")[i % 2]
        seconds = rng.uniform(0.4, 1.6)
        x = _tone(300.0 if label == "low" else 2500.0, seconds, rng) if informative else (
            0.1 * rng.standard_normal(int(seconds * SR)))
        path = root / f"{seed}_{i}.wav"
        sf.write(path, x.astype(np.float32), SR)
        recs.append(ClipRecord(path, labels=(label,)))
    return recs


def test_band_statistics_are_each_bands_mean_then_std() -> None:
    spec = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    np.testing.assert_allclose(band_statistics(spec), [2.0, 1.0, np.sqrt(8 / 3), 0.0])


def test_clip_baseline_separates_tones_and_not_noise(tmp_path: Path) -> None:
    train, test = _clips(tmp_path / "tr", 16, 0), _clips(tmp_path / "te", 10, 1)
    rep = evaluate_clip_baseline(train, test, lengths_s=[None, 0.5])
    assert rep.metric == "accuracy" and [r["length_s"] for r in rep.rows] == [None, 0.5]
    assert all(r["accuracy"] == 1.0 and r["frame_shift_ms"] == pytest.approx(10.0) for r in rep.rows)
    noise_train, noise_test = _clips(tmp_path / "ntr", 16, 2, False), _clips(tmp_path / "nte", 40, 3, False)
    chance = evaluate_clip_baseline(noise_train, noise_test).rows[0]["accuracy"]
    assert chance < 0.8  # 40 clips: P(accuracy >= 0.8 | p = 0.5) < 1e-4


def test_clip_baseline_multilabel_and_errors(tmp_path: Path) -> None:
    recs = _clips(tmp_path / "a", 12, 0)
    multi = [ClipRecord(r.path, labels=(*r.labels, "loud") if k % 3 == 0 else r.labels) for k, r in enumerate(recs)]
    model = fit_clip_baseline(multi)
    assert model.multilabel and model.labels == ["high", "loud", "low"]
    assert evaluate_clip_baseline(multi, multi).metric == "mAP"
    with pytest.raises(ValueError, match="two or more"):
        fit_clip_baseline([ClipRecord(recs[0].path, labels=("low",))])
    with pytest.raises(ValueError, match=r"labels \['other'\]"):
        evaluate_clip_baseline(recs, [ClipRecord(recs[0].path, labels=("other",))])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    rep = evaluate_clip_baseline(recs, [*recs[:4], ClipRecord(broken, labels=("low",))])
    assert rep.skipped == [str(broken)] and len(rep.rows) == 1  # the good clips still scored


def _event_clips(root: Path, n: int, seed: int) -> list[ClipRecord]:
    """3 s clips of noise, each with one 0.6-1.2 s tone event of class low (300 Hz) or high (2.5 kHz)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        label = ("low", "high")[i % 2]
        x = 0.01 * rng.standard_normal(3 * SR)
        onset = round(rng.uniform(0.2, 1.6), 2)
        dur = round(rng.uniform(0.6, 1.2), 2)
        a, b = int(onset * SR), int((onset + dur) * SR)
        x[a:b] += _tone(300.0 if label == "low" else 2500.0, (b - a) / SR, rng)
        path = root / f"{seed}_{i}.wav"
        sf.write(path, x.astype(np.float32), SR)
        recs.append(ClipRecord(path, labels=(label,), events=(Event(onset, onset + dur, label),)))
    return recs


def test_sed_baseline_finds_the_tone_events(tmp_path: Path) -> None:
    train, valid, test = (_event_clips(tmp_path / s, n, k) for k, (s, n) in enumerate((("tr", 16), ("va", 6),
                                                                                        ("te", 8))))
    res = evaluate_baseline(train, test, valid_records=valid, scoring=EventScoring(tune="global", psds=False))
    assert res["baseline"]["train_clips"] == 16
    # 0.1 s blocks: onsets and offsets land within the 200 ms collar
    assert res["event_based"]["f1"] >= 0.9, res["event_based"]
    with pytest.raises(ValueError, match="no strong labels"):
        evaluate_baseline([ClipRecord(r.path, labels=r.labels) for r in train], test)


def test_cli_evaluate_baseline_alone_on_a_split_and_on_the_other_folds(tmp_path: Path) -> None:
    import csv
    import json

    from typer.testing import CliRunner

    from audioflex.cli import app

    recs = _clips(tmp_path / "audio", 24, 0)
    with open(tmp_path / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "labels", "split", "fold"])
        for k, r in enumerate(recs):
            w.writerow([r.path.relative_to(tmp_path), r.labels[0], "test" if k >= 16 else "train", k % 4 + 1])
    run = CliRunner().invoke
    manifest = str(tmp_path / "manifest.csv")
    res = run(app, ["evaluate", "-d", manifest, "--baseline", "train", "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "e" / "report.json").read_text())
    assert [r["name"] for r in rep] == ["baseline (log-mel stats + LR)"] and rep[0]["rows"][0]["accuracy"] == 1.0
    res = run(app, ["evaluate", "-d", str(tmp_path / "manifest.csv"), "--split", "", "--folds", "4",
                    "--baseline", "rest", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "f" / "report.json").read_text())[0]["rows"][0]["accuracy"] == 1.0
    res = run(app, ["evaluate", "-d", str(tmp_path / "manifest.csv"), "--baseline", "valid"])
    assert res.exit_code == 1 and "--baseline 'valid': no clips" in res.output
    res = run(app, ["evaluate", "-d", str(tmp_path / "manifest.csv")])
    assert res.exit_code == 1 and "--baseline SPLIT" in res.output

"""Strong-label runs validate by frame and event metrics and keep ``best/`` by ``sed.select``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from audioflex.checkpoints.io import read_meta
from audioflex.train import train

SR = 16000
CLIP_S = 3.0
HTSAT_KW = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4], "spec_size": 128,
            "window_size": 4, "drop_path": 0.0}


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Beeps (1 kHz) and buzzes (3 kHz) at known times in noise: a flat DESED folder (audio/,
    meta.tsv, split.csv) with 8 training and 4 validation clips."""
    root = tmp_path_factory.mktemp("strong")
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_S * SR)) / SR
    rows, split = ["filename\tonset\toffset\tevent_label"], ["filename,split"]
    for i in range(12):
        x = 0.05 * rng.standard_normal(len(t))
        name = f"c{i:02d}.wav"
        for label, freq in (("beep", 1000.0), ("buzz", 3000.0))[: 1 + i % 2]:
            on = round(float(rng.uniform(0.0, 1.8)), 3)
            off = round(on + float(rng.uniform(0.5, 1.0)), 3)
            x = x + 0.5 * ((t >= on) & (t < off)) * np.sin(2 * np.pi * freq * t)
            rows.append(f"{name}\t{on}\t{off}\t{label}")
        sf.write(root / "audio" / name, x.astype(np.float32), SR)
        split.append(f"{name},{'train' if i < 8 else 'validation'}")
    (root / "meta.tsv").write_text("\n".join(rows) + "\n")
    (root / "split.csv").write_text("\n".join(split) + "\n")
    return root


def _cfg(root: Path, out: Path, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"name": "htsat_mini", "kwargs": HTSAT_KW},
        "data": {"train": {"path": str(root), "split": "train"}, "valid": {"path": str(root), "split": "valid"},
                 "batch_size": 4, "multilabel": True, "clip_seconds": 2.5},
        "sed": {"frame_weight": 0.7},
        "optim": {"lr": 3e-3, "schedule": "constant", "weight_decay": 0.0},
        "loss": "bce", "max_steps": 6, "eval_every": 2, "log_every": 1,
        "out_dir": str(out), "progress": False, "tensorboard": False,
    }
    cfg.update(top)
    return cfg


def _valid_rows(metrics: Path) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, metrics.read_text().splitlines()) if r["split"] == "valid"]


def test_sed_run_logs_event_metrics_and_selects_best_by_onset_f1(strong: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="audioflex.train.loop"):
        res = train(_cfg(strong, tmp_path / "run"))
    assert "no validation data" not in caplog.text  # validated on event clips: best/ is written
    assert res.best_checkpoint is not None and res.best_checkpoint.is_dir()
    rows = _valid_rows(res.metrics_path)
    assert [r["step"] for r in rows] == [2, 4, 6]
    for r in rows:
        for key in ("frame_mAP", "frame_f1", "event_f1", "onset_f1", "onset_threshold", "mAP"):
            assert np.isfinite(r[key]), key
        assert r["primary"] == r["onset_f1"]
    assert res.metric_name == "onset_f1"
    best = max(rows, key=lambda r: r["onset_f1"])  # the first of equal values is kept
    assert res.best_step == best["step"] and res.best_metric == pytest.approx(best["onset_f1"])
    meta = read_meta(res.best_checkpoint)
    assert meta["extra"]["metric_name"] == "onset_f1" and meta["extra"]["step"] == best["step"]


def test_sed_select_other_metric_and_bad_name(strong: Path, tmp_path: Path) -> None:
    res = train(_cfg(strong, tmp_path / "fm", max_steps=2, sed={"frame_weight": 0.7, "select": "frame_mAP"}))
    (row,) = _valid_rows(res.metrics_path)
    assert res.metric_name == "frame_mAP" and row["primary"] == row["frame_mAP"]
    with pytest.raises(ValueError, match="sed.select: use one of onset_f1"):
        train(_cfg(strong, tmp_path / "bad", sed={"frame_weight": 0.7, "select": "accuracy"}))
    with pytest.raises(ValueError, match="augment.time_shift_ms moves the audio but not its event times"):
        train(_cfg(strong, tmp_path / "shift", augment={"time_shift_ms": 100}))
    with pytest.raises(ValueError, match="augment.speed changes the audio's timing"):
        train(_cfg(strong, tmp_path / "speed", augment={"speed": [0.9, 1.1]}))


def test_clip_only_run_still_selects_by_clip_metric(strong: Path, tmp_path: Path) -> None:
    res = train(_cfg(strong, tmp_path / "clip", max_steps=2, sed={"frame_weight": 0.0}))
    (row,) = _valid_rows(res.metrics_path)
    assert res.metric_name == "mAP" and "onset_f1" not in row and "loss" in row

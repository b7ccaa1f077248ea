"""``data.norm_stats: dataset``: measured on the training clips, cached, saved with the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import tiny_config, write_dataset

from audioflex.audio.frontend.kaldi import KaldiFbankConfig, compute_norm_stats
from audioflex.audio.frontend.logmel import LogMelConfig
from audioflex.checkpoints.io import load_checkpoint
from audioflex.data.readers import read_dataset
from audioflex.train import train
from audioflex.train.config import DataConfig
from audioflex.train.distributed import DistInfo
from audioflex.train.norm_stats import check_norm_stats_options, resolve_norm_stats


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"))


def _train_records(manifest: Path):
    return [r for r in read_dataset(manifest).records if r.split == "train"]


def test_dataset_stats_are_the_training_clips_own(manifest: Path, tmp_path: Path) -> None:
    recs = _train_records(manifest)
    fe = KaldiFbankConfig(num_mel_bins=32)
    d = DataConfig(norm_stats="dataset", max_seconds=None)
    out = resolve_norm_stats(d, fe, recs, tmp_path, DistInfo(), seed=0)
    mean, std = compute_norm_stats([r.path for r in recs], fe)
    # the same float64 accumulation over the same frames: equal up to summation order
    assert out.norm_mean == pytest.approx(mean, rel=1e-9) and out.norm_std == pytest.approx(std, rel=1e-9)
    # tone clips at 0.5 amplitude are far from AudioSet's level: the defaults would not fit them
    assert abs(out.norm_mean - fe.norm_mean) > 1.0
    assert out.num_mel_bins == 32 and out.frame_shift_ms == fe.frame_shift_ms
    # cached: a resumed run reads the same numbers, whatever the clips hold now
    cached = json.loads((tmp_path / "norm_stats.json").read_text())
    assert cached["norm_mean"] == out.norm_mean and cached["clips"] == len(recs)
    again = resolve_norm_stats(d, fe, recs[:1], tmp_path, DistInfo(), seed=0)
    assert (again.norm_mean, again.norm_std) == (out.norm_mean, out.norm_std)


def test_a_sample_and_a_crop_are_what_is_measured(manifest: Path, tmp_path: Path) -> None:
    recs = _train_records(manifest)
    fe = KaldiFbankConfig(num_mel_bins=32)
    d = DataConfig(norm_stats="dataset", norm_stats_clips=3, max_seconds=0.2)
    (tmp_path / "a").mkdir()
    out = resolve_norm_stats(d, fe, list(reversed(recs)), tmp_path / "a", DistInfo(), seed=1)
    assert json.loads((tmp_path / "a" / "norm_stats.json").read_text())["clips"] == 3
    # the sample does not depend on the order the reader listed the clips in
    (tmp_path / "b").mkdir()
    same = resolve_norm_stats(d, fe, recs, tmp_path / "b", DistInfo(), seed=1)
    assert (same.norm_mean, same.norm_std) == (out.norm_mean, out.norm_std)


def test_frontend_mode_keeps_the_front_end() -> None:
    fe = KaldiFbankConfig(num_mel_bins=32)
    assert resolve_norm_stats(DataConfig(), fe, [], Path("/nonexistent"), DistInfo(), seed=0) is fe


@pytest.mark.parametrize(
    ("data", "frontend", "stream", "match"),
    [
        (DataConfig(norm_stats="data"), KaldiFbankConfig(), False, "use 'frontend' or 'dataset'"),
        (DataConfig(norm_stats="dataset"), LogMelConfig(), False, "LogMelConfig has none"),
        (DataConfig(norm_stats="dataset"), KaldiFbankConfig(), True, "shard stream"),
        (DataConfig(norm_stats="dataset", norm_stats_clips=0), KaldiFbankConfig(), False, "norm_stats_clips"),
    ],
)
def test_bad_options_name_the_key(data: DataConfig, frontend, stream: bool, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_norm_stats_options(data, frontend, stream)


def test_a_run_trains_and_saves_the_measured_stats(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "run", max_steps=2, eval_every=2)
    cfg["data"]["norm_stats"] = "dataset"
    res = train(cfg)
    stats = json.loads((tmp_path / "run" / "norm_stats.json").read_text())
    fe = load_checkpoint(res.best_checkpoint).frontend.config
    assert (fe.norm_mean, fe.norm_std) == (stats["norm_mean"], stats["norm_std"])

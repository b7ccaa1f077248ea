"""The run log: metrics.jsonl rows, bad_files.txt (errors counted, warnings listed once per run
directory), the train row's loss and throughput."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audioflex.data.datasets import BadClip
from audioflex.train.distributed import DistInfo
from audioflex.train.runlog import RunLog, TrainMeter


def test_log_rows_rank_zero_only(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.log({"split": "train", "step": 1, "loss": 0.5})
    log.log({"split": "valid", "step": 1, "primary": 0.25})
    rows = [json.loads(x) for x in log.metrics_path.read_text().splitlines()]
    assert rows == [{"split": "train", "step": 1, "loss": 0.5}, {"split": "valid", "step": 1, "primary": 0.25}]
    other = RunLog(tmp_path / "rank1", is_main=False)
    other.log({"step": 1})
    assert not other.metrics_path.exists()


def test_bad_files_and_notes(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.report_bad([BadClip(0, "a.wav", "cannot\n  decode"), BadClip(1, "b.wav", "empty")])
    log.report_bad([])
    assert log.bad_count == 2
    log.report_notes([("c.wav", "truncated to 10 s"), ("c.wav", "truncated to 10 s")])
    lines = log.bad_path.read_text().splitlines()
    assert lines == ["a.wav\tcannot decode", "b.wav\tempty", "c.wav\twarning: truncated to 10 s"]
    again = RunLog(tmp_path)  # a resumed run does not list the same warning twice
    again.report_batch([], [("c.wav", "truncated to 10 s"), ("d.wav", "too short")])
    assert again.bad_path.read_text().splitlines()[3:] == ["d.wav\twarning: too short"]
    assert again.bad_count == 0  # warnings are not counted as bad files


def test_truncate_after_resume(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    for step in (1, 2, 3):
        log.log({"split": "train", "step": step})
    log.truncate(1)
    assert [json.loads(x)["step"] for x in log.metrics_path.read_text().splitlines()] == [1]


def test_train_meter_row() -> None:
    meter = TrainMeter()
    meter.add(4, 100, 2.0)
    meter.add(2, 50, 1.0)
    rec = meter.record(DistInfo(), step=3, epoch=0, lr=1e-3, bad_files=1)
    assert list(rec) == ["split", "step", "epoch", "loss", "lr", "clips_per_s", "tokens_per_s", "bad_files"]
    assert rec["loss"] == 0.5 and rec["step"] == 3 and rec["bad_files"] == 1
    # 150 / dt vs 25 * (6 / dt): each division rounds once, so they agree to a few ulp, not exactly
    assert rec["tokens_per_s"] == pytest.approx(25 * rec["clips_per_s"], rel=1e-14)
    assert (meter.clips, meter.tokens, meter.loss_sum) == (0, 0, 0.0)  # counts restart

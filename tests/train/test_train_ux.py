"""Training UX: the chance-level health check, the max_minutes budget, the run-directory lock,
and the note when there is no validation split."""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
from pathlib import Path

import pytest
from test_train import tiny_config, write_dataset

from audioflex.train import loop, train
from audioflex.train.health import HealthCheck, chance_loss


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"))


def test_chance_loss_is_the_best_constant_prediction() -> None:
    assert chance_loss("ce", [[0], [1], [2], [3]], 4) == pytest.approx(math.log(4))
    p = [0.75, 0.25]  # three clips of class 0, one of class 1: the prior's entropy
    assert chance_loss("ce", [[0], [0], [0], [1]], 2) == pytest.approx(-sum(q * math.log(q) for q in p))
    # multi-label BCE averaged over classes: binary entropy of each class's frequency
    h = -(0.5 * math.log(0.5) * 2)
    assert chance_loss("bce", [[0, 1], [0], [], []], 2) == pytest.approx((h + (-(0.25 * math.log(0.25) + 0.75 *
                                                                                math.log(0.75)))) / 2)
    assert chance_loss("ce", [], 10) == pytest.approx(math.log(10))


def test_health_check_warns_once_at_its_step_only_when_stuck() -> None:
    stuck = HealthCheck(chance=math.log(10), steps=5)
    msgs = [stuck.update(s, math.log(10)) for s in range(1, 9)]
    assert msgs[:4] == [None] * 4 and msgs[5:] == [None] * 3
    assert "chance level" in msgs[4] and "optim.lr" in msgs[4] and "data.norm_stats" in msgs[4]
    learning = HealthCheck(chance=math.log(10), steps=5)
    assert all(learning.update(s, 2.3 - 0.3 * s) is None for s in range(1, 9))
    assert all(HealthCheck(chance=1.0, steps=0).update(s, 5.0) is None for s in range(1, 9))


def test_a_run_that_does_not_learn_is_warned_about(manifest: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    cfg = tiny_config(manifest, tmp_path / "run", max_steps=4, health_check_steps=3)
    cfg["optim"] = {"lr": 1e-12, "schedule": "constant"}  # cannot move: stays at chance (ln 2)
    cfg["augment"] = {"mixup_alpha": 0.0}
    # a frozen random model's loss on batches of 4 clips scatters around ln 2 (its head's random logits are
    # right on some clips): test the wiring with a wide margin (warn above 0.5 ln 2)
    monkeypatch.setattr(loop, "HealthCheck", functools.partial(HealthCheck, ratio=0.5))
    with caplog.at_level(logging.WARNING, logger="audioflex.train"):
        train(cfg)
    assert any("still at the chance level" in r.getMessage() for r in caplog.records)


def test_max_minutes_ends_the_run_with_its_checkpoints(manifest: Path, tmp_path: Path) -> None:
    cfg = tiny_config(manifest, tmp_path / "run", max_steps=None, max_minutes=1e-6, eval_every=100)
    res = train(cfg)
    assert res.steps == 1  # the first step already spends the budget
    assert (res.run_dir / "last" / "model.safetensors").is_file()
    assert res.best_metric is not None  # the final validation ran
    again = train({**cfg, "resume": str(res.run_dir), "max_minutes": 1e-6})
    assert again.steps == 1  # the spent budget is kept across a resume


def test_a_live_run_holds_its_directory(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{os.getppid()} {socket.gethostname()}\n")  # a live process
    with pytest.raises(ValueError, match="in use by a live training run"):
        train(tiny_config(manifest, run, max_steps=1))
    (run / ".lock").write_text(f"{2**22 + 4321} {socket.gethostname()}\n")  # a gone process: stale
    res = train(tiny_config(manifest, run, max_steps=1))
    assert res.steps == 1 and not (run / ".lock").exists()


def test_no_validation_split_says_where_the_model_is(manifest: Path, tmp_path: Path, caplog) -> None:
    cfg = tiny_config(manifest, tmp_path / "run", max_steps=2)
    cfg["data"] = {**cfg["data"], "valid": None}
    with caplog.at_level(logging.WARNING, logger="audioflex.train"):
        res = train(cfg)
    assert res.best_checkpoint is None
    assert any("best/ is not written" in r.getMessage() for r in caplog.records)


def test_tokens_per_s_counts_patch_tokens_for_a_grid_model(manifest: Path, tmp_path: Path) -> None:
    import json

    cfg = tiny_config(manifest, tmp_path / "run", max_steps=2, eval_every=0)
    cfg["model"] = {"name": "ast_tiny", "kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
    cfg["frontend"] = {"num_mel_bins": 32, "target_length": 64}
    cfg["data"]["batch_size"] = 4
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["split"] == "train")
    # 32 x 64 at 16x16 patches, stride 10: 2 x 5 tokens per clip (not 64 frames)
    assert row["tokens_per_s"] == pytest.approx(10 * row["clips_per_s"])

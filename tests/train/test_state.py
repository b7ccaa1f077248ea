"""Train state on disk: optimiser flattening, crash-safe directory swap, finding and loading a
``last/`` checkpoint, metrics truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.models.registry import create_model
from audioflex.train import state as st
from audioflex.train.distributed import DistInfo

LABELS = ["a", "b", "c", "d"]


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = create_model("elastic_ast_tiny", embed_dim=32, depth=1, num_heads=2, num_classes=4, num_mel_bins=32,
                         max_time_patches=8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    return model, opt


def test_flatten_optimizer_round_trip() -> None:
    _, opt = _model_and_optimizer()
    sd = opt.state_dict()
    tensors, meta = st.flatten_optimizer(sd)
    assert tensors and all(k.startswith("optim/") for k in tensors)
    json.dumps(meta)  # the rest is JSON-ready
    back = st.unflatten_optimizer(tensors, json.loads(json.dumps(meta)))
    assert back["param_groups"] == sd["param_groups"]  # betas back to tuples
    assert set(back["state"]) == set(sd["state"])
    for pid, s in sd["state"].items():
        for k, v in s.items():
            assert torch.equal(torch.as_tensor(back["state"][pid][k]), torch.as_tensor(v)), (pid, k)


def test_swap_dir_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "last"
    target.mkdir()
    (target / "old.txt").write_text("old")
    src = tmp_path / "tmp" / "last"
    src.mkdir(parents=True)
    (src / "new.txt").write_text("new")
    st.swap_dir(src, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert not src.exists() and not (tmp_path / ".last.old").exists()
    src.mkdir()
    st.swap_dir(src, tmp_path / "fresh")  # no target yet
    assert (tmp_path / "fresh").is_dir()


def test_find_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        st.find_resume(run)
    (run / ".last.old").mkdir(parents=True)  # a kill between the two renames of swap_dir
    (run / ".last.old" / st.STATE_JSON).write_text("{}")
    assert st.find_resume(run) == (run / ".last.old", run)
    (run / "last").mkdir()
    (run / "last" / st.STATE_JSON).write_text("{}")
    assert st.find_resume(run) == (run / "last", run)
    assert st.find_resume(run / "last") == (run / "last", run)


def test_save_last_then_load_resume_restores_everything(tmp_path: Path) -> None:
    model, opt = _model_and_optimizer()
    progress = st.Progress(step=7, epoch=2, position=3, best_metric=0.5, best_step=4, last_metrics={"primary": 0.4})
    info = DistInfo()
    torch.manual_seed(123)
    st.save_last(tmp_path, model, opt, None, progress, info, bad_files=2, frontend=KaldiFbankConfig(num_mel_bins=32),
                 labels=LABELS, extra={"step": 7})
    expected_draw = torch.rand(3)
    assert (tmp_path / "last" / st.STATE_JSON).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".last.tmp-")]

    fresh, fresh_opt = _model_and_optimizer()
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    got, bad = st.load_resume(tmp_path / "last", fresh, fresh_opt, None, info)
    assert got == progress and bad == 2
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG continues where it was saved
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    sd, fsd = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert all(torch.equal(sd[i]["exp_avg"], fsd[i]["exp_avg"]) for i in sd)


def test_load_resume_other_world_size_and_stream_restart(tmp_path: Path) -> None:
    model, opt = _model_and_optimizer()
    progress = st.Progress(step=5, epoch=1, position=4)
    st.save_last(tmp_path, model, opt, None, progress, DistInfo(), bad_files=0,
                 frontend=KaldiFbankConfig(num_mel_bins=32), labels=LABELS, extra={})
    two = DistInfo(rank=0, world_size=2)  # a 2-process resume of a 1-process run: next epoch
    got, _ = st.load_resume(tmp_path / "last", model, opt, None, two)
    assert (got.step, got.epoch, got.position) == (5, 2, 0)
    got, _ = st.load_resume(tmp_path / "last", model, opt, None, DistInfo(), stream=True, stream_resume="restart")
    assert (got.step, got.epoch, got.position) == (5, 1, 0)
    got, _ = st.load_resume(tmp_path / "last", model, opt, None, DistInfo(), stream=True, stream_resume="skip")
    assert (got.step, got.epoch, got.position) == (5, 1, 4)


def test_truncate_metrics_drops_later_rows_and_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"split": "train", "step": s} for s in (1, 2, 3, 4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"split": "tr')
    assert st.truncate_metrics(path, 2) == 3
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]
    assert st.truncate_metrics(path, 2) == 0
    assert st.truncate_metrics(tmp_path / "missing.jsonl", 2) == 0


def test_remove_temporaries_keeps_the_resume_source(tmp_path: Path) -> None:
    for name in (".last.tmp-a", ".best.tmp-b", ".last.tmp-keep", "last"):
        (tmp_path / name).mkdir()
    removed = st.remove_temporaries(tmp_path, keep=tmp_path / ".last.tmp-keep" / "last")
    assert sorted(p.name for p in removed) == [".best.tmp-b", ".last.tmp-a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".last.tmp-keep", "last"]

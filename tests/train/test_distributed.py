"""torch.distributed set-up without torchrun: a single-process DistInfo and no-op collectives."""

from __future__ import annotations

import pytest
import torch

from audioflex.train.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed, pick_device


def test_single_process_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    info = DistInfo()
    assert (info.rank, info.world_size, info.local_rank) == (0, 1, 0)
    assert info.is_main and not info.enabled and not info.initialized_here
    assert info.device == torch.device("cpu")
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    got = init_distributed("cpu")
    assert got == DistInfo(device=torch.device("cpu"))
    assert all_reduce_sum(3.5, got) == 3.5 and all_reduce_sum(2, got) == 2
    barrier(got)
    cleanup(got)
    assert not torch.distributed.is_initialized()


def test_world_size_without_torchrun_variables_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RuntimeError, match="RANK is not set; launch with torchrun"):
        init_distributed("cpu")


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda", local_rank=3) == torch.device("cuda:3")
    assert pick_device("cuda:1", local_rank=3) == torch.device("cuda:1")
    expected = torch.device("cuda:2") if torch.cuda.is_available() else torch.device("cpu")
    assert pick_device("auto", local_rank=2) == expected

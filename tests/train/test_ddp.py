"""DDP equivalence: 2 CPU processes (gloo) == 1 process holding the same global batch."""

from __future__ import annotations

import faulthandler
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from audioflex.audio.augment import SpecAugment
from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.data.datasets import SpectrogramDataset, TrainCollator, WaveformDataset
from audioflex.data.durations import resolve_durations
from audioflex.data.readers import read_dataset
from audioflex.data.samplers import BudgetBatchSampler
from audioflex.models.registry import create_model
from audioflex.train.config import load_config
from audioflex.train.losses import per_clip_loss
from audioflex.train.optim import build_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import tiny_config, write_dataset  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: dict[str, Any]) -> None:
    """One DDP rank: ``train(cfg)`` joined over ``127.0.0.1:port``."""
    faulthandler.enable(all_threads=True)  # a rank that aborts in C++ shows where it was
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    from audioflex.train import train

    res = train(cfg)
    assert res.steps == cfg["max_steps"]


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_with_the_global_batch(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path / "data", per_class=7, valid=1)
    common: dict[str, Any] = {"max_steps": 3, "eval_every": 0, "save_every": 0, "log_every": 2}
    cfg = tiny_config(manifest, tmp_path / "ddp", **common)
    # token dropping draws from each process's own RNG: off, so both set-ups see identical inputs
    cfg["model"]["kwargs"]["token_drop"] = 0.0
    cfg["data"]["max_tokens"] = 30  # packed batches with different clip counts per rank
    # Adam with a large eps updates ~ lr * gradient (plain Adam is nearly scale-free in its first
    # steps), and no clipping: so a wrong loss normalisation across ranks would show
    cfg["optim"].update(eps=1.0, lr=0.5, grad_clip=None)
    # mixup pairs clips inside a batch, so it would differ between 2 batches and their union
    cfg["augment"]["mixup_alpha"] = 0.0
    mp.spawn(_worker, args=(2, _free_port(), cfg), nprocs=2, join=True)

    ref, counts = _reference(cfg)
    assert any(c0 != c1 for c0, c1 in counts)  # ranks did hold different numbers of clips
    a = load_file(str(tmp_path / "ddp" / "last" / "model.safetensors"))
    worst = max(float((a[k] - ref[k]).abs().max()) for k in a)
    assert worst <= 1e-5, worst
    # and it really trained: the weights moved away from the (seeded) initial model's
    torch.manual_seed(0)
    init = create_model("elastic_ast_tiny", **cfg["model"]["kwargs"], num_classes=2, num_mel_bins=32).state_dict()
    assert max(float((init[k] - a[k]).abs().max()) for k in a) > 1e-2


def _reference(cfg: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]]]:
    """One process, one packed batch per step holding both ranks' clips, loss = mean over clips."""
    c = load_config(cfg)
    res = read_dataset(c.data.train.path)
    recs, _ = resolve_durations(res.select(split="train"))
    torch.manual_seed(c.seed)
    model = create_model("elastic_ast_tiny", **c.model.kwargs, num_classes=len(res.labels), num_mel_bins=32)
    model.train()
    waves = WaveformDataset(
        recs, res.labels, sample_rate=16000, train=True, max_seconds=c.data.max_seconds, seed=c.seed
    )
    aug = SpecAugment(c.augment.freq_mask, c.augment.time_mask, frame_shift_ms=10.0)
    ds = SpectrogramDataset(waves, KaldiFbankConfig(num_mel_bins=32), frame_shifts_ms=c.augment.frame_shifts_ms,
                            spec_augment=aug)
    sampler = BudgetBatchSampler(lambda e: ds.token_counts(e, 16), c.data.max_tokens, seed=c.seed, accumulation=2)
    collate = TrainCollator(packed=True, patch=16, max_tokens=c.data.max_tokens, train=True, pad_value=ds.pad_value)
    opt = build_optimizer(model, c.optim)
    step, epoch, counts = 0, 0, []
    while step < c.max_steps:
        ds.set_epoch(epoch)
        batches = sampler.rank_batches(epoch)
        for b0, b1 in zip(batches[::2], batches[1::2]):
            if step == c.max_steps:
                break
            counts.append((len(b0), len(b1)))
            batch = collate([ds[i] for i in b0 + b1])
            loss = per_clip_loss(model(batch.inputs).clip_logits, batch.targets, "ce").mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            step += 1
        epoch += 1
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, counts

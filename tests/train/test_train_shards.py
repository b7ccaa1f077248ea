"""Training streamed from WebDataset shards: packed and fixed batches, resume, rank split."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.checkpoints.io import load_checkpoint
from audioflex.data.datasets import SpectrogramDataset, StreamingBatches, WaveformDataset
from audioflex.data.readers import read_dataset
from audioflex.data.records import LabelSet
from audioflex.data.shards import ShardStream, read_shard_info, write_shards
from audioflex.train import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ddp import _free_port, _worker  # noqa: E402
from test_train import tiny_config, write_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sharded")
    manifest = write_dataset(root / "data", per_class=8, valid=2)
    res = read_dataset(manifest)
    rep = write_shards(res.select(split="train"), root / "shards", shard_size="40k", labels=res.label_names)
    assert rep.clips == 16 and len(rep.shards) >= 4
    return manifest, root / "shards"


def shard_config(manifest: Path, shards: Path, out: Path, **top: Any) -> dict[str, Any]:
    cfg = tiny_config(manifest, out, **top)
    cfg["data"]["train"] = {"path": str(shards), "kind": "shards"}
    cfg["data"].update(shuffle_buffer=4, pack_buffer=6)
    return cfg


def _params(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def test_manifest_and_labels(data: tuple[Path, Path]) -> None:
    info = read_shard_info(data[1])
    assert info.labels == ["high", "low"] and info.num_clips == 16 and info.multilabel is False
    assert sum(s["clips"] for s in info.manifest["shards"]) == 16 and len(info.shards) == len(info.manifest["shards"])


def test_packed_training_from_shards_and_exact_resume(data: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, shards = data
    # 16 clips of <= 0.8 s at <= 40 tokens: a few batches per epoch, so 7 steps cross epochs
    full = train(shard_config(manifest, shards, tmp_path / "full", max_steps=7, eval_every=7))
    assert full.steps == 7 and full.metric_name == "accuracy" and full.best_checkpoint is not None
    ck = load_checkpoint(full.last_checkpoint)
    assert ck.labels == ["high", "low"] and ck.meta["extra"]["loss"] == "ce"
    recs = [json.loads(x) for x in full.metrics_path.read_text().splitlines()]
    train_recs = [r for r in recs if r["split"] == "train"]
    assert max(r["epoch"] for r in train_recs) >= 1  # the stream was restarted for a new epoch
    assert any(r["split"] == "valid" for r in recs)  # validation on the regular dataset

    # killed after 3 steps (mid-epoch), resumed with stream_resume=skip: the same parameters
    part = train(shard_config(manifest, shards, tmp_path / "part", max_steps=3, eval_every=0, save_every=3))
    state = json.loads((part.last_checkpoint / "train_state.json").read_text())
    assert state["step"] == 3 and state["position"] > 0
    resumed = train(
        shard_config(manifest, shards, tmp_path / "part", max_steps=7, eval_every=7), [f"resume={tmp_path / 'part'}"]
    )
    assert resumed.steps == 7
    a, b = _params(tmp_path / "part"), _params(tmp_path / "full")
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)

    # stream_resume=restart: the interrupted epoch starts over (trains on, different result)
    restart = train(shard_config(manifest, shards, tmp_path / "r", max_steps=3, eval_every=0, save_every=3))
    cfg = shard_config(manifest, shards, tmp_path / "r", max_steps=5, eval_every=0)
    cfg["data"]["stream_resume"] = "restart"
    again = train(cfg, [f"resume={restart.run_dir}"])
    assert again.steps == 5


def test_fixed_length_model_from_shards(data: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, shards = data
    cfg = shard_config(manifest, shards, tmp_path / "ast", max_steps=5, eval_every=5)
    cfg["model"] = {"name": "ast_tiny", "kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2}}
    cfg["frontend"] = {"num_mel_bins": 32, "target_length": 48}
    cfg["data"]["batch_size"] = 5
    cfg["data"]["frontend_device"] = "device"  # streamed waveforms, front end in the loop
    cfg["augment"]["frame_shifts_ms"] = []
    res = train(cfg)
    assert res.steps == 5 and (res.last_checkpoint / "model.safetensors").is_file()
    ck = load_checkpoint(res.last_checkpoint)
    assert ck.model.max_length == 48


def test_stream_options_are_checked(data: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, shards = data
    cfg = shard_config(manifest, shards, tmp_path / "x", max_steps=None, epochs=1)
    with pytest.raises(ValueError, match="max_steps"):
        train(cfg)
    cfg = shard_config(manifest, shards, tmp_path / "x", max_steps=1)
    cfg["data"]["balanced"] = True
    with pytest.raises(ValueError, match="balanced"):
        train(cfg)
    (tmp_path / "nolabels").mkdir()
    (tmp_path / "nolabels" / "a.tar").write_bytes((shards / "shard-000000.tar").read_bytes())
    cfg = shard_config(manifest, tmp_path / "nolabels", tmp_path / "y", max_steps=1)
    with pytest.raises(FileNotFoundError, match="labels.json"):
        train(cfg)


def _rank_batches(shards: Path, rank: int, packed: bool) -> list[list[str]]:
    labels = LabelSet(read_shard_info(shards).labels)
    waves = WaveformDataset([], labels, sample_rate=16000, train=True, max_seconds=10.0, seed=0)
    ds = SpectrogramDataset(waves, KaldiFbankConfig(num_mel_bins=32), frame_shifts_ms=[10, 20], max_tokens=40)
    stream = ShardStream(shards, sample_rate=16000, shuffle=True, buffer=3, seed=1, rank=rank, world_size=2)
    batches = StreamingBatches(stream, ds, packed=packed, max_tokens=40, batch_size=3, buffer=4)
    batches.set_epoch(2)
    loader = DataLoader(batches, batch_size=None, num_workers=2, collate_fn=lambda items: items)
    out = []
    for items in loader:
        if packed:
            assert sum(it[2]["tokens"] for it in items) <= 40  # the token budget
        else:
            assert len(items) <= 3
        out.append([it[2]["id"] for it in items])
    return out


@pytest.mark.parametrize("packed", [True, False])
def test_two_ranks_stream_disjoint_clips(data: tuple[Path, Path], packed: bool) -> None:
    _, shards = data
    r0, r1 = (_rank_batches(shards, r, packed) for r in range(2))
    ids0, ids1 = [i for b in r0 for i in b], [i for b in r1 for i in b]
    assert ids0 and ids1 and not set(ids0) & set(ids1)
    assert len(ids0) + len(ids1) == 16 and len(set(ids0) | set(ids1)) == 16
    assert r0 == _rank_batches(shards, 0, packed)  # deterministic for (seed, epoch, rank)


def test_two_gloo_ranks_train_from_shards(data: tuple[Path, Path], tmp_path: Path) -> None:
    """Under DDP each rank streams its own shards; epochs end together when one rank runs out."""
    import torch.multiprocessing as mp

    manifest, shards = data
    cfg = shard_config(manifest, shards, tmp_path / "ddp", max_steps=6, eval_every=0, save_every=3)
    mp.spawn(_worker, args=(2, _free_port(), cfg), nprocs=2, join=True)
    recs = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["epoch"] for r in recs) >= 1 and recs[-1]["step"] == 6
    state = json.loads((tmp_path / "ddp" / "last" / "train_state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 6

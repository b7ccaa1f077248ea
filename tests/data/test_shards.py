"""WebDataset-format shards: write from a reader, stream back, split across ranks/workers."""

import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audioflex.data.records import ClipRecord, Event
from audioflex.data.shards import ShardStream, iter_shard, list_shards, parse_size, write_shards


def make_records(tmp_path, n=12):
    recs = []
    for i in range(n):
        p = tmp_path / "audio" / f"c{i:02d}.flac"
        p.parent.mkdir(exist_ok=True)
        wave = np.random.default_rng(i).uniform(-0.5, 0.5, 1600 + 100 * i).astype(np.float32)
        sf.write(p, wave, 16000)
        recs.append(ClipRecord(p, labels=(f"l{i % 3}",), events=(Event(0.0, 0.05, f"l{i % 3}"),), split="train"))
    return recs


def test_parse_size():
    assert parse_size("1GB") == 1024**3 and parse_size("500MB") == 500 * 1024**2 and parse_size(64) == 64
    with pytest.raises(ValueError, match="shard size"):
        parse_size("lots")


def test_write_and_stream_round_trip(tmp_path):
    recs = make_records(tmp_path)
    rep = write_shards(recs, tmp_path / "shards", shard_size="8k", labels=["l0", "l1", "l2"])
    assert rep.clips == 12 and len(rep.shards) > 2 and not rep.missing
    assert (tmp_path / "shards" / "labels.json").is_file()
    assert not list((tmp_path / "shards").glob("*.tmp"))
    with tarfile.open(rep.shards[0]) as tar:
        names = tar.getnames()
    assert names[0].endswith(".flac") and names[1].endswith(".json")
    items = list(ShardStream(tmp_path / "shards", sample_rate=16000))
    assert len(items) == 12
    for (wave, rec), src in zip(items, recs):
        assert rec.labels == src.labels and rec.events == src.events and rec.split == "train"
        assert wave.shape[0] == sf.info(src.path).frames
        assert torch.allclose(wave, torch.from_numpy(sf.read(src.path, dtype="float32")[0]), atol=1e-4)
    assert sum(1 for _ in iter_shard(rep.shards[0])) >= 1


def test_shards_split_across_ranks_and_workers(tmp_path):
    recs = make_records(tmp_path, 16)
    write_shards(recs, tmp_path / "s", shard_size="4k")
    shards = list_shards(tmp_path / "s")
    seen = []
    for rank in range(2):
        ds = ShardStream(shards, sample_rate=16000, rank=rank, world_size=2, shuffle=True, buffer=4, seed=3)
        ds.set_epoch(1)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        seen.append([rec.id for _, rec in loader])
    assert not set(seen[0]) & set(seen[1])
    assert len(seen[0]) + len(seen[1]) == 16


def test_missing_files_are_reported(tmp_path):
    recs = make_records(tmp_path, 3)
    recs.append(ClipRecord(tmp_path / "gone.wav", labels=("x",)))
    rep = write_shards(recs, tmp_path / "s")
    assert rep.clips == 3 and len(rep.missing) == 1 and "gone.wav" in rep.missing[0]

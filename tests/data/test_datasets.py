"""Datasets (crop/pad policy, targets, front end in workers, bad files), samplers and config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflex.audio.augment import SpecAugment
from audioflex.audio.frontend.kaldi import KaldiFbankConfig
from audioflex.data.datasets import BadClip, SpectrogramDataset, TrainCollator, WaveformDataset
from audioflex.data.durations import resolve_durations
from audioflex.data.records import ClipRecord, Event, LabelSet
from audioflex.data.samplers import BudgetBatchSampler, ClassBalancedSampler, class_balanced_weights
from audioflex.data.targets import FrameTargetSpec
from audioflex.packing import PackedBatch
from audioflex.train.config import ConfigError, load_config
from audioflex.train.optim import lr_factor

SR = 16000


def _wav(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    x = t / seconds * 0.9  # a ramp: the first sample's value gives a crop's offset
    sf.write(path, x.astype(np.float32), SR, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[ClipRecord]:
    d = tmp_path_factory.mktemp("clips")
    recs = [
        ClipRecord(_wav(d / "long.wav", 2.0), labels=("a",)),
        ClipRecord(_wav(d / "short.wav", 0.5), labels=("b",)),
        ClipRecord(_wav(d / "multi.wav", 1.0), labels=("a", "c")),
    ]
    recs, bad = resolve_durations(recs, d / "durations.json")
    assert not bad and all(r.duration is not None for r in recs)
    return recs


LABELS = LabelSet(["a", "b", "c"])


def test_native_cap_random_in_train_start_or_centre_in_eval(clips: list[ClipRecord]) -> None:
    train = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, max_seconds=1.0, seed=3)
    offsets = set()
    for epoch in range(4):
        train.set_epoch(epoch)
        w, _, meta = train[0]
        assert w.shape[0] == SR  # capped at 1 s
        # the ramp value at the first sample gives the crop offset
        assert float(w[0]) == pytest.approx(meta["offset_s"] / 2.0 * 0.9, abs=1e-3)
        offsets.add(round(meta["offset_s"], 4))
        # same (seed, epoch, index) -> same crop
        assert torch.equal(train[0][0], w)
    assert len(offsets) > 1  # random crops differ between epochs
    w, _, meta = train[1]
    assert w.shape[0] == SR // 2 and meta["offset_s"] == 0.0  # shorter clip kept whole, not padded
    start = WaveformDataset(clips, LABELS, sample_rate=SR, max_seconds=1.0)
    centre = WaveformDataset(clips, LABELS, sample_rate=SR, max_seconds=1.0, eval_crop="center")
    assert start[0][2]["offset_s"] == 0.0 and float(start[0][0][0]) == pytest.approx(0.0, abs=1e-6)
    assert centre[0][2]["offset_s"] == pytest.approx(0.5)
    uncapped = WaveformDataset(clips, LABELS, sample_rate=SR)
    assert uncapped[0][0].shape[0] == 2 * SR


def test_time_shift_rolls_training_clips_only(clips: list[ClipRecord]) -> None:
    plain = WaveformDataset(clips, LABELS, sample_rate=SR, train=False, time_shift_ms=200)[2][0]
    train = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, time_shift_ms=200, seed=4)
    shifts = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        w = train[2][0]
        k = int(w.argmin())  # the ramp's first sample (0.0) marks the shift
        k = k - SR if k > SR // 2 else k
        assert abs(k) <= SR // 5 and torch.equal(w, torch.roll(plain, k))  # at most 200 ms, circular
        shifts.add(k)
    assert len(shifts) > 1  # a new shift each epoch
    with pytest.raises(ValueError, match="time_shift_ms"):
        WaveformDataset(clips, LABELS, sample_rate=SR, time_shift_ms=-1)


def test_speed_perturbation_of_training_clips_and_the_token_plan(clips: list[ClipRecord]) -> None:
    plain = WaveformDataset(clips, LABELS, sample_rate=SR, speed=(0.8, 1.25))
    assert all(plain[i][0].shape[0] == int(clips[i].duration * SR) for i in range(3))  # evaluation: unchanged
    waves = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, max_seconds=1.5, speed=(0.8, 1.25), seed=2)
    ds = SpectrogramDataset(waves, KaldiFbankConfig(num_mel_bins=32), max_tokens=10_000, patch=16)
    collate = TrainCollator(packed=True, patch=16, train=True, max_tokens=10_000)
    factors = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        counts = ds.token_counts(epoch)
        items = [ds[i] for i in range(3)]
        for i, (_, _, meta) in enumerate(items):
            speed = waves.speed_of(i)
            assert 0.8 <= speed <= 1.25 and meta["speed"] == speed
            read = min(clips[i].duration, 1.5)  # the crop comes first, then the speed change
            assert abs(meta["duration_s"] - read / speed) <= 1.5 / SR
            assert waves.planned_seconds(clips[i], i, epoch) == pytest.approx(read / speed)
            factors.add(round(speed, 6))
        assert collate(items).inputs.info.cu_seqlens_list[-1] == sum(counts)  # the plan holds
    assert len(factors) > 6  # a new factor per clip and epoch
    # the ramp played faster: its end value is reached sooner, its slope is steeper
    ramp = waves[1][0]
    slope = float(ramp[SR // 10 + 1] - ramp[SR // 10]) * SR
    assert slope == pytest.approx(0.9 / 0.5 * waves.speed_of(1), rel=0.01)
    for bad in ((1.1,), (1.2, 0.9), (0.0, 1.0)):
        with pytest.raises(ValueError, match=r"speed: expected \[low, high\]"):
            WaveformDataset(clips, LABELS, sample_rate=SR, speed=bad)


def test_background_noise_mixes_into_training_clips_only(clips: list[ClipRecord]) -> None:
    noise = [torch.randn(3 * SR, generator=torch.Generator().manual_seed(0))]
    plain = WaveformDataset(clips, LABELS, sample_rate=SR)[2][0]
    ev = WaveformDataset(clips, LABELS, sample_rate=SR, background=noise, background_prob=1.0)
    assert torch.equal(ev[2][0], plain)  # evaluation clips stay clean
    train = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, background=noise, background_prob=1.0,
                            background_snr_db=(10.0, 10.0), seed=1)
    a = train[2][0]
    snr = 10 * torch.log10(plain.double().pow(2).mean() / (a.double() - plain.double()).pow(2).mean())
    assert float(snr) == pytest.approx(10.0, abs=1e-3)
    train.set_epoch(1)
    assert not torch.equal(train[2][0], a)  # another excerpt each epoch
    never = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, background=noise, background_prob=0.0)
    assert torch.equal(never[2][0], plain)
    with pytest.raises(ValueError, match="needs background noise recordings"):
        WaveformDataset(clips, LABELS, sample_rate=SR, background_prob=0.5)
    with pytest.raises(ValueError, match="background_prob"):
        WaveformDataset(clips, LABELS, sample_rate=SR, background=noise, background_prob=1.5)


def _strong_pair(d: Path) -> list[ClipRecord]:
    """A 1 s clip of faint noise with an event 'a', and a 2 s clip silent but for a tone (event 'b', 0.8-1.3 s)."""
    noise = 0.01 * np.random.default_rng(0).standard_normal(SR)
    sf.write(d / "quiet.wav", noise.astype(np.float32), SR, subtype="FLOAT")
    burst = np.zeros(2 * SR)
    n = np.arange(int(0.8 * SR), int(1.3 * SR))
    burst[n] = 0.5 * np.cos(2 * np.pi * 440 * n / SR)
    sf.write(d / "burst.wav", burst.astype(np.float32), SR, subtype="FLOAT")
    recs = [
        ClipRecord(d / "quiet.wav", labels=("a",), events=(Event(0.1, 0.3, "a"),)),
        ClipRecord(d / "burst.wav", labels=("b",), events=(Event(0.8, 1.3, "b"),)),
    ]
    recs, _ = resolve_durations(recs, d / "durations.json")
    return recs


def test_event_overlay_moves_the_excerpts_events_with_its_audio(tmp_path: Path) -> None:
    recs = _strong_pair(tmp_path)
    plain = WaveformDataset(recs, LABELS, sample_rate=SR, train=True)
    mixed = WaveformDataset(recs, LABELS, sample_rate=SR, train=True, overlay_prob=1.0, overlay_snr_db=(0.0, 0.0))
    spec = FrameTargetSpec(labels=tuple(LABELS), step_frames=16)
    frames = SpectrogramDataset(mixed, KaldiFbankConfig(num_mel_bins=32), frame_targets=spec)
    for epoch in range(4):  # another excerpt of the burst clip each epoch
        plain.set_epoch(epoch), frames.set_epoch(epoch)
        wave0, target0, _ = plain[0]
        wave, target, meta = mixed[0]
        added = (wave.double() - wave0.double()).abs() > 1e-6
        on = torch.nonzero(added).flatten()
        (ev,) = meta["overlay_events"]
        assert ev.label == "b"
        # the event covers the samples where the tone now sounds (one sample of rounding either way)
        assert ev.onset == pytest.approx(float(on[0]) / SR, abs=1.5 / SR)
        assert ev.offset == pytest.approx(float(on[-1] + 1) / SR, abs=1.5 / SR)
        assert target.tolist() == [1.0, 1.0, 0.0] and target0.tolist() == [1.0, 0.0, 0.0]
        # frame targets (0.16 s steps) hold both the clip's own event and the overlaid one
        _, _, fmeta = frames[0]
        ft, hop = fmeta["frame_target"], 0.16
        steps = ft.shape[0]
        step_of = torch.arange(wave.shape[0]) // int(hop * SR)
        want_b = torch.zeros(steps)
        want_b[step_of[added].clamp(max=steps - 1).unique()] = 1.0
        assert torch.equal(ft[:, 1], want_b)
        assert ft[:, 0].tolist() == [1.0, 1.0] + [0.0] * (steps - 2)  # 'a' at 0.1-0.3 s
    assert torch.equal(mixed[0][0], mixed[0][0])  # the same draw for the same (epoch, clip)
    # a weakly labelled clip is left alone, and evaluation never overlays
    weak = [recs[0], ClipRecord(recs[1].path, labels=("b",), duration=recs[1].duration)]
    w = WaveformDataset(weak, LABELS, sample_rate=SR, train=True, overlay_prob=1.0)
    assert "overlay_events" not in w[1][2] and "overlay_events" not in w[0][2]  # no other strong clip
    ev_ds = WaveformDataset(recs, LABELS, sample_rate=SR, overlay_prob=1.0)
    assert "overlay_events" not in ev_ds[0][2]
    with pytest.raises(ValueError, match="overlay_prob"):
        WaveformDataset(recs, LABELS, sample_rate=SR, overlay_prob=1.5)
    with pytest.raises(ValueError, match="overlay_snr_db"):
        WaveformDataset(recs, LABELS, sample_rate=SR, overlay_prob=0.5, overlay_snr_db=(5.0, 0.0))


def test_targets_multi_hot_and_index(clips: list[ClipRecord]) -> None:
    ds = WaveformDataset(clips, LABELS, sample_rate=SR)
    assert ds[2][1].tolist() == [1.0, 0.0, 1.0]
    assert ds[1][1].tolist() == [0.0, 1.0, 0.0]
    idx = WaveformDataset(clips[:2], LABELS, sample_rate=SR, target="index")
    assert idx[0][1].item() == 0 and idx[1][1].item() == 1 and idx[1][1].dtype == torch.long
    with pytest.raises(ValueError, match="exactly one label"):
        WaveformDataset(clips, LABELS, sample_rate=SR, target="index")[2]


def test_fixed_length_model_crops_and_pads_spectrograms(clips: list[ClipRecord]) -> None:
    fe = KaldiFbankConfig(num_mel_bins=32, target_length=64)
    waves = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, clip_seconds=0.655)
    ds = SpectrogramDataset(waves, fe)
    for i in range(3):
        spec, _, meta = ds[i]
        assert spec.shape == (32, 64)
    # the short clip (0.5 s = 48 frames) is padded with the front end's padding value
    spec, _, meta = ds[1]
    assert meta["frames"] == 48
    assert torch.allclose(spec[:, 48:], torch.full_like(spec[:, 48:], ds.pad_value))
    batch = TrainCollator(packed=False, pad_value=ds.pad_value)([ds[0], ds[1]])
    assert batch.inputs.shape == (2, 32, 64) and batch.targets.shape == (2, 3)


def test_random_resolution_token_counts_match_packed_batches(clips: list[ClipRecord]) -> None:
    fe = KaldiFbankConfig(num_mel_bins=32)
    waves = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, max_seconds=1.5, seed=1)
    aug = SpecAugment(8, 20, frame_shift_ms=10.0)
    ds = SpectrogramDataset(waves, fe, frame_shifts_ms=[10, 20, 40], spec_augment=aug)
    shifts = set()
    collate = TrainCollator(packed=True, patch=16, train=True, max_tokens=10_000)
    for epoch in range(3):
        ds.set_epoch(epoch)
        counts = ds.token_counts(epoch, patch=16)
        items = [ds[i] for i in range(3)]
        for (spec, _, meta), n in zip(items, counts):
            shifts.add(meta["frame_shift_ms"])
            secs = min(clips[meta["index"]].duration, 1.5)
            hop = int(SR * meta["frame_shift_ms"] / 1000)
            assert spec.shape == (32, 1 + (int(secs * SR) - 400) // hop)
            assert n == 2 * math.ceil(spec.shape[1] / 16)
        pb = collate(items).inputs
        assert isinstance(pb, PackedBatch)
        assert pb.info.cu_seqlens_list[-1] == sum(counts)  # the sampler's plan is what the batch holds
        assert pb.frame_shift_ms == tuple(m["frame_shift_ms"] for _, _, m in items)
    assert len(shifts) > 1
    # one front end per frame shift, built once
    assert set(ds._frontends) <= {10.0, 20.0, 40.0}


def test_mixup_in_collator_mixes_targets_and_keeps_lengths(clips: list[ClipRecord]) -> None:
    fe = KaldiFbankConfig(num_mel_bins=32)
    changed = 0
    for seed in range(4):
        ds = SpectrogramDataset(WaveformDataset(clips, LABELS, sample_rate=SR, train=True, seed=seed), fe)
        items = [ds[i] for i in range(3)]
        b1 = TrainCollator(packed=True, train=True, mixup_alpha=0.5)(items)
        b2 = TrainCollator(packed=True, train=True, mixup_alpha=0.5)(items)
        assert torch.equal(b1.targets, b2.targets) and torch.equal(b1.inputs.patches, b2.inputs.patches)
        plain = TrainCollator(packed=True, train=True)(items)
        assert b1.inputs.grid_sizes == plain.inputs.grid_sizes  # every clip keeps its length
        changed += not torch.equal(b1.targets, plain.targets)
        # each mixed row is a convex combination of its own and a partner's targets
        t = plain.targets
        for i in range(3):
            assert any(_is_mix(b1.targets[i], t[i], t[j]) for j in range(3))
    assert changed >= 2


def _is_mix(y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> bool:
    if torch.allclose(a, b):
        return torch.allclose(y, a)
    diff = a - b
    lam = ((y - b)[diff != 0] / diff[diff != 0]).mean()
    return 0 <= float(lam) <= 1 and torch.allclose(y, lam * a + (1 - lam) * b, atol=1e-5)


def test_unreadable_clip_becomes_marker_and_is_dropped(tmp_path: Path, clips: list[ClipRecord]) -> None:
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(8000, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wav file")
    recs, bad = resolve_durations([*clips, ClipRecord(nan, ("a",)), ClipRecord(garbage, ("a",))])
    assert [b.path for b in bad] == [str(garbage)] and len(recs) == 4
    ds = SpectrogramDataset(WaveformDataset(recs, LABELS, sample_rate=SR), KaldiFbankConfig(num_mel_bins=32))
    item = ds[3]
    assert isinstance(item, BadClip) and "NaN" in item.error and item.path == str(nan)
    batch = TrainCollator(packed=True)([ds[0], item, ds[1]])
    assert batch.index == (0, 1) and batch.bad == (item,) and batch.targets.shape == (2, 3)
    empty = TrainCollator(packed=True)([item])
    assert empty.inputs is None and empty.num_clips == 0 and empty.bad == (item,)


# ------------------------------------------------------------------------------------ samplers


def test_class_balanced_weights_and_statistics() -> None:
    labels = [("a",)] * 90 + [("b",)] * 10 + [("a", "b")] * 0
    w = class_balanced_weights(labels)
    assert w[0] == pytest.approx(1 / 90) and w[95] == pytest.approx(1 / 10)
    s = ClassBalancedSampler(w, num_samples=4000, seed=5)
    draws = list(s)
    frac_b = sum(i >= 90 for i in draws) / len(draws)
    assert abs(frac_b - 0.5) < 0.04  # balanced: half the draws from the rare class
    assert draws == list(ClassBalancedSampler(w, num_samples=4000, seed=5))  # seeded
    s.set_epoch(1)
    assert list(s) != draws
    multi = class_balanced_weights([("a", "b"), ("a",), ("c",)])
    assert multi.tolist() == pytest.approx([1 / 2 + 1, 1 / 2, 1.0])
    r0 = ClassBalancedSampler(w, num_samples=100, seed=5, num_replicas=2, rank=0)
    r1 = ClassBalancedSampler(w, num_samples=100, seed=5, num_replicas=2, rank=1)
    both = ClassBalancedSampler(w, num_samples=100, seed=5).draw()
    assert len(r0) == len(r1) == 50 and sorted(list(r0) + list(r1)) == sorted(both)


def _counts(n: int = 37, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(1, 60, size=n).tolist()


def test_budget_sampler_budget_coverage_and_determinism() -> None:
    counts = _counts()
    s = BudgetBatchSampler(counts, 100, seed=2)
    batches = list(s)
    assert all(sum(counts[i] for i in b) <= 100 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(counts)))
    assert batches == list(BudgetBatchSampler(counts, 100, seed=2))
    s.set_epoch(1)
    assert list(s) != batches
    big = BudgetBatchSampler([150, 20], 100, shuffle=False)
    assert sorted(map(sorted, big)) == [[0], [1]]  # an over-long clip gets its own (cropped) batch
    fixed = list(BudgetBatchSampler([1] * 10, 4, seed=0))
    assert [len(b) for b in fixed].count(4) == 2 and sum(map(len, fixed)) == 10


@pytest.mark.parametrize("world", [2, 3])
def test_budget_sampler_ranks_disjoint_equal_and_covering(world: int) -> None:
    counts = _counts(41, seed=world)
    ranks = [BudgetBatchSampler(counts, 90, seed=7, num_replicas=world, rank=r) for r in range(world)]
    per_rank = [list(s) for s in ranks]
    assert len({len(b) for b in per_rank}) == 1  # same number of batches on every rank
    clips = [i for b in per_rank for batch in b for i in batch]
    assert set(clips) == set(range(len(counts)))  # covering
    one = BudgetBatchSampler(counts, 90, seed=7)
    n_plain = len(one)
    # duplicates only to complete the last step (< world batches)
    assert len(per_rank[0]) * world - n_plain < world
    dropped = [list(BudgetBatchSampler(counts, 90, seed=7, num_replicas=world, rank=r, drop_last=True))
               for r in range(world)]
    flat = [i for b in dropped for batch in b for i in batch]
    assert len(flat) == len(set(flat))  # drop_last: strictly disjoint
    # batches dealt in the same step have similar sizes (sorted by tokens before grouping)
    for step in zip(*per_rank):
        tok = [sum(counts[i] for i in b) for b in step]
        assert max(tok) - min(tok) <= 60
    # one process with accumulation=world sees exactly the union of the ranks' batches
    acc = list(BudgetBatchSampler(counts, 90, seed=7, accumulation=world))
    union = [b for step in zip(*per_rank) for b in step]
    assert acc == union


def test_budget_sampler_resumes_mid_epoch() -> None:
    counts = _counts()
    s = BudgetBatchSampler(counts, 100, seed=4, num_replicas=2, rank=1)
    s.set_epoch(3)
    full = list(s)
    state = s.state_dict(position=2)
    t = BudgetBatchSampler(counts, 100, seed=4, num_replicas=2, rank=1)
    t.load_state_dict(state)
    assert list(t) == full[2:]
    assert list(t) == full  # the next pass over the epoch starts at its beginning again


# ------------------------------------------------------------------------------ config, optim


def test_config_yaml_overrides_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: elastic_ast_tiny}\ndata: {train: data/x.csv}\noptim: {lr: 1.0e-4}\n")
    cfg = load_config(p, ["optim.lr=3e-4", "model.kwargs.depth=2", "augment.frame_shifts_ms=[10, 20]", "amp=bf16"])
    assert cfg.optim.lr == 3e-4 and cfg.model.kwargs == {"depth": 2} and cfg.amp == "bf16"
    assert cfg.data.train.path == "data/x.csv" and cfg.augment.frame_shifts_ms == [10, 20]
    cfg.to_yaml(tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg
    with pytest.raises(ConfigError, match="optim: unknown key.*'lrr'"):
        load_config(p, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="max_steps: expected int"):
        load_config(p, ["max_steps=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(p, ["optim.lr"])


def test_lr_schedule_warmup_cosine_step() -> None:
    cfg = load_config(None, ["optim.warmup_steps=10", "optim.schedule=cosine", "optim.min_lr_ratio=0.1"]).optim
    assert lr_factor(0, cfg, 110) == pytest.approx(0.1) and lr_factor(9, cfg, 110) == pytest.approx(1.0)
    assert lr_factor(60, cfg, 110) == pytest.approx(0.55) and lr_factor(110, cfg, 110) == pytest.approx(0.1)
    cfg = load_config(None, ["optim.schedule=step", "optim.step_size=5", "optim.step_start=10", "optim.gamma=0.5"])
    assert [lr_factor(s, cfg.optim, 100) for s in (9, 10, 14, 15)] == [1.0, 0.5, 0.5, 0.25]

    # a label repeated inside one clip counts once
    assert class_balanced_weights([("a", "a"), ("a",)]).tolist() == pytest.approx([0.5, 0.5])


def test_random_length_crops_known_to_the_sampler(clips: list[ClipRecord]) -> None:
    """data.random_crop_frames: U{lo .. min(T, hi)} frames per clip and epoch, at the clip's own
    frame shift; token counts planned before batching equal the batch's tokens."""
    fe = KaldiFbankConfig(num_mel_bins=32)
    waves = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, max_seconds=None, seed=2)
    ds = SpectrogramDataset(waves, fe, frame_shifts_ms=[10, 20], random_crop_frames=[40, 150], patch=16)
    sizes: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    collate = TrainCollator(packed=True, patch=16, train=True, max_tokens=10_000)
    for epoch in range(6):
        ds.set_epoch(epoch)
        counts = ds.token_counts(epoch)
        items = [ds[i] for i in range(3)]
        for i, (spec, _, meta) in enumerate(items):
            hop = int(SR * meta["frame_shift_ms"] / 1000)
            full = 1 + (int(clips[i].duration * SR) - 400) // hop
            assert 40 <= spec.shape[1] <= min(full, 150) or (full < 40 and spec.shape[1] == full)
            assert 0 <= meta["crop_start"] <= full - spec.shape[1]
            assert counts[i] == 2 * math.ceil(spec.shape[1] / 16)
            # the crop is the front end's output at those frames (not a re-computation)
            whole = ds.frontend(meta["shift_key"])(waves[i][0].unsqueeze(0))[0][0]
            assert torch.equal(spec, whole[:, meta["crop_start"] : meta["crop_start"] + spec.shape[1]])
            sizes[i].add(spec.shape[1])
        assert collate(items).inputs.info.cu_seqlens_list[-1] == sum(counts)
    assert len(sizes[0]) > 3  # the 2 s clip gets different lengths
    # evaluation never crops
    evalds = SpectrogramDataset(
        WaveformDataset(clips, LABELS, sample_rate=SR), fe, random_crop_frames=[40, 150], max_tokens=8
    )
    assert evalds[0][0].shape[1] == 1 + (2 * SR - 400) // 160
    with pytest.raises(ValueError, match="random_crop_frames"):
        SpectrogramDataset(waves, fe, random_crop_frames=[50, 10])
    with pytest.raises(ValueError, match="native-length"):
        SpectrogramDataset(waves, KaldiFbankConfig(num_mel_bins=32, target_length=64), random_crop_frames=[5, 10])


def test_token_budget_crop_in_the_dataset(clips: list[ClipRecord]) -> None:
    fe = KaldiFbankConfig(num_mel_bins=32)
    waves = WaveformDataset(clips, LABELS, sample_rate=SR, train=True, seed=0)
    ds = SpectrogramDataset(waves, fe, max_tokens=10, patch=16)  # 5 columns = 80 frames
    spec, _, meta = ds[0]
    assert spec.shape[1] == 80 and meta["tokens"] == 10 and ds.token_counts(0)[0] == 10
